"""The extraction pipeline: clip list -> decoded frames (worker processes) -> GoogLeNet -> feature store.

Decoding runs in ``DataLoader`` worker processes, one clip per item, while the main process runs the
network on fixed-size batches that span clip boundaries and a writer thread puts finished clips in the
store. A clip is written (and marked done) only once all its T frames are computed, so an interrupted
run loses at most the clips in flight and the next run with the same command resumes after the last
finished one. Every batch has the same shape (the last one is zero-padded) so a frame's features do not
depend on which clips happened to share its batch: an interrupted-and-resumed run writes the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.context
import os
import queue
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from envs.periphery import (
    LOWRES_GLANCE_TRANSFORM,
    MOTION_ENERGY_OPS_PER_PIXEL,
    MOTION_ENERGY_TRANSFORM,
    default_periphery_dim,
    motion_energy,
    periphery,
)
from envs.store import ClipRecord, StoreWriter

from .backbone import (
    BACKBONE,
    DEFAULT_CROP,
    DEFAULT_GLANCE,
    FEATURE_DIM,
    GRID,
    INPUT_SIZE,
    LAYER,
    NORMALISATION,
    Backbone,
    check_crop_size,
    check_glance_size,
    trunk_flops,
)
from .datasets import ActorTrack, ClipList
from .decode import DecodeError, Sampling, decode_clip
from .errors import ExtractionError

#: Bumped when a change here would make features differ from an older store's.
EXTRACTOR_VERSION = 1
#: What a cell is: ``full`` = a cell of the whole frame's 7 x 7 map; ``crop`` = a crop centred on the cell.
CELLS = ("full", "crop")
#: The glance of a crop-cell store (its periphery): ``motion`` = pixel motion energy (k = 1); ``lowres`` =
#: channel-group means of the backbone on the downscaled frame (k = 64).
GLANCES = ("motion", "lowres")
#: k of the low-resolution glance: the periphery's default for D = 1024 on the 7 x 7 grid.
LOWRES_GLANCE_DIM = default_periphery_dim(FEATURE_DIM, GRID * GRID)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the clips at positions ``index, index + count, ...`` of the full list."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` with ``0 <= i < n``."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ExtractionError(f"--shard {text!r}: write it as i/n, e.g. 0/4 (shards 0/4 .. 3/4).") from None
        if not 0 <= i < n:
            raise ExtractionError(f"--shard {text!r}: need 0 <= i < n (shards of n=4 are 0/4, 1/4, 2/4, 3/4).")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, records: list[ClipRecord]) -> list[ClipRecord]:
        return records[self.index :: self.count]


@dataclass
class ExtractOptions:
    """How to extract. ``fps=None`` spreads ``frames`` over each whole video; ``batch_size`` /
    ``workers`` of ``None`` pick defaults for the device and machine. ``cells="crop"`` makes each cell the
    pooled features of a ``crop_size`` px crop centred on it, with a glance as the store's periphery:
    ``glance="motion"`` (pixel motion energy) or ``"lowres"`` (the backbone on the frame downscaled to
    ``glance_size`` px)."""

    frames: int = 30
    fps: float | None = 10.0
    weights: str = "imagenet"
    seed: int = 0
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    shard: Shard | None = None
    progress: bool = True
    cells: str = "full"
    crop_size: int = DEFAULT_CROP
    glance: str = "motion"
    glance_size: int = DEFAULT_GLANCE


@dataclass
class Summary:
    """What a run did (``seconds`` is the decoding + network + writing loop only)."""

    store: Path
    clips_total: int
    clips_done_before: int
    clips_done: int
    clips_failed: int
    frames: int
    seconds: float
    complete: bool
    weights: str
    device: str
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def text(self) -> str:
        lines = [
            (
                f"Extracted {self.clips_done} clip(s) this run ({self.frames} frames in {self.seconds:.1f} s, "
                f"{self.frames_per_second:.1f} frames/s on {self.device}); {self.clips_done_before} were "
                f"already done; {self.clips_failed} failed in total."
            )
        ]
        if self.failures:
            lines.append(f"Failures (all listed in {self.store / 'failures.jsonl'}):")
            lines += [f"  {f['video_id']}: {f['reason']}" for f in self.failures[:10]]
            if len(self.failures) > 10:
                lines.append(f"  ... and {len(self.failures) - 10} more")
        state = "complete" if self.complete else "INCOMPLETE (run the same command again to resume)"
        clips = self.clips_total - self.clips_failed  # a failed row holds no clip
        failed = f" ({self.clips_failed} of {self.clips_total} rows failed)" if self.clips_failed else ""
        lines.append(f"Store: {self.store} [{state}; {clips} clips{failed}, weights {self.weights}]")
        return "\n".join(lines)


def cell_settings(cells: str, crop_size: int, trunk: torch.nn.Module) -> dict[str, Any]:
    """The ``meta.json`` entries of the cell kind, with the network's FLOPs measured once at its input size."""
    if cells == "full":
        frame = trunk_flops(trunk, INPUT_SIZE)
        return {"cells": "full", "crop_size": None, "cnn_flops_per_cell": frame / GRID**2, "cnn_flops_per_frame": frame}
    cell = trunk_flops(trunk, crop_size)
    return {"cells": "crop", "crop_size": crop_size, "cnn_flops_per_cell": cell, "cnn_flops_per_frame": cell * GRID**2}


def glance_description(size: int = INPUT_SIZE) -> dict[str, Any]:
    """``meta.json``'s periphery entry of a crop-cell store with the pixel motion-energy glance (k = 1)."""
    return {
        "transform": MOTION_ENERGY_TRANSFORM,
        "dim": 1,
        "kind": "motion energy: per-cell mean |grey difference| against the previous sampled frame, grey in [0, 1]",
        "flops_per_frame": MOTION_ENERGY_OPS_PER_PIXEL * size * size,
    }


def lowres_glance_description(size: int, trunk: torch.nn.Module, dim: int = LOWRES_GLANCE_DIM) -> dict[str, Any]:
    """``meta.json``'s periphery entry of a crop-cell store with the low-resolution glance, its FLOPs
    measured once (the network at ``size`` px; the resize and the pooling are left out, under 0.1 %)."""
    return {
        "transform": LOWRES_GLANCE_TRANSFORM,
        "dim": dim,
        "size": size,
        "kind": f"low-resolution backbone: {LAYER} of the frame downscaled to {size} px, adaptive-average-pooled "
        f"to {GRID} x {GRID}, {dim} channel-group means per cell",
        "flops_per_frame": trunk_flops(trunk, size),
    }


def lowres_glance(backbone: Backbone, frames: torch.Tensor, size: int, dim: int = LOWRES_GLANCE_DIM) -> np.ndarray:
    """The low-resolution glance of uint8 frames ``(B, 224, 224, 3)``: float32 ``(B, 7, 7, dim)``."""
    return periphery(backbone.lowres_cells(frames, size).numpy(), dim)


def store_settings(clips: ClipList, sampling: Sampling, weights_identity: str, shard: Shard | None) -> dict[str, Any]:
    """The ``meta.json`` entries that say how the features were made (a resume must match them)."""
    settings: dict[str, Any] = {
        "dataset": clips.dataset,
        "backbone": BACKBONE,
        "layer": LAYER,
        "weights": weights_identity,
        "input_size": sampling.size,
        "resize": "stretch to square (aspect ratio not kept); cv2 INTER_AREA if shrinking >= 2x, else INTER_LINEAR",
        "normalisation": NORMALISATION,
        "sampling": sampling.mode,
        "fps": sampling.fps,
        "padding": "repeat last frame",
        "extractor_version": EXTRACTOR_VERSION,
    }
    if shard is not None:
        settings["shard"] = str(shard)
    if clips.actors is not None:
        settings["core"] = "cells overlapped by the actor boxes of each sampled frame"
    return settings


class _ClipFrames(Dataset):
    """Decodes one clip per item (in a worker process); failures come back as a reason, not an exception."""

    def __init__(self, jobs: list[tuple[int, str]], sampling: Sampling, glance: bool = False) -> None:
        self.jobs = jobs
        self.sampling = sampling
        self.glance = glance

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return decode_item(*self.jobs[i], self.sampling, self.glance)


def decode_item(row: int, source: str, sampling: Sampling, glance: bool = False) -> dict[str, Any]:
    """Decode one clip into what :meth:`ClipAssembler.add` takes; a failure comes back as its reason.

    ``glance`` adds the clip's pixel motion energy (``envs.periphery.motion_energy``), computed here where
    the pixels are, so the network never runs for it."""
    try:
        clip = decode_clip(source, sampling)
    except DecodeError as err:
        return {"row": row, "error": str(err)}
    except Exception as err:  # a decoder crash on one file must not stop the run
        return {"row": row, "error": f"decoding failed: {type(err).__name__}: {err}"}
    item = {
        "row": row,
        "frames": torch.from_numpy(clip.frames),
        "timestamps": clip.timestamps,
        "frame_numbers": clip.frame_numbers,
        "valid_frames": clip.valid_frames,
    }
    if glance:
        item["glance"] = torch.from_numpy(motion_energy(clip.frames, GRID))
    return item


def _worker_context() -> multiprocessing.context.BaseContext:
    """Start decoding workers from a clean process, not by forking this one.

    A forked child inherits the caller's OpenCV thread pool (and any other library's locks) in
    whatever state it was in; OpenCV then deadlocks in the child if the parent had used its pool (for
    instance to write or blur frames). A fork server preloaded with this module starts each worker
    clean and still fast.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing).

    A decoding worker whose parent was killed with ``kill -9`` would otherwise live on, holding its frames.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the call: the signal would never come
        os._exit(1)


def exit_when_gone(pid: int) -> None:
    """Exit this process as soon as process ``pid`` ends (a daemon thread waits on a pidfd; Linux >= 5.3).

    A DataLoader worker started from a fork server is the fork server's child, not the extraction's, so
    ``PR_SET_PDEATHSIG`` alone does not tie it to the extraction; this does.
    """
    if not hasattr(os, "pidfd_open"):
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # already gone (or pidfds unsupported): nothing to wait for
        if not _alive(pid):
            os._exit(1)
        return

    def wait() -> None:
        select.select([fd], [], [])  # readable once the process has exited
        os._exit(1)

    threading.Thread(target=wait, name=f"exit-with-{pid}", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def decoder_init() -> None:
    """Settings of a decoding process (a DataLoader worker or a Ray task's worker)."""
    if os.nice(0) < 10:
        os.nice(10 - os.nice(0))  # decode in the cycles the network leaves idle; never slow the network down
    cv2.setNumThreads(1)  # one core per worker; the main process's threads run the network


def _worker_init(extraction_pid: int, _: int) -> None:
    die_with_parent()
    exit_when_gone(extraction_pid)
    decoder_init()


class _WriterThread:
    """Writes finished clips in the background, in submission order; re-raises its errors in the caller."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=32)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as err:  # handed to the main thread
                    self._error = err

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self._queue.put(job)

    def close(self) -> None:
        """Finish the queued writes, stop, and raise the first error if any."""
        self._queue.put(None)
        self._thread.join()
        self.check()


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass
class Plan:
    """An opened store and what is left to do: shared by the local pipeline and the Ray one."""

    out: Path
    writer: StoreWriter
    sampling: Sampling
    backbone: Backbone
    batch_size: int
    pending: list[int]
    jobs: list[tuple[int, str]]  # (row, source video) still to decode
    done_before: int
    actors: dict[str, ActorTrack] | None = None  # actor boxes by video id: the store gets core.npy
    crop_size: int | None = None  # crop cells of this side (and a pixel glance); None: full-frame cells
    lowres_size: int | None = None  # the low-resolution glance's side, when it is the store's periphery

    def features(self, batch: torch.Tensor) -> np.ndarray:
        """float16 ``(B, 7, 7, 1024)`` cells of a uint8 ``(B, 224, 224, 3)`` batch."""
        if self.crop_size is None:
            return self.backbone(batch).numpy()
        return self.backbone.crop_cells(batch, self.crop_size).numpy()

    def clip_glance(self, frames: torch.Tensor | np.ndarray) -> np.ndarray | None:
        """The low-resolution glance of one clip's T frames, run as one batch of T (so a clip's values do not
        depend on its neighbours, as for the features); None when the store has another periphery."""
        if self.lowres_size is None:
            return None
        return lowres_glance(self.backbone, torch.as_tensor(np.asarray(frames)), self.lowres_size)


def plan_extraction(clips: ClipList, out: str | Path, options: ExtractOptions) -> Plan:
    """Check the options, build the network, open (or resume) the store and list the clips left to do.

    Clips whose video is missing on disk are marked failed here, before anything is decoded.
    """
    out = Path(out)
    try:
        sampling = Sampling(frames=options.frames, fps=options.fps, size=INPUT_SIZE)
    except ValueError as err:
        raise ExtractionError(f"Bad sampling options: {err}.") from None
    if options.cells not in CELLS:
        raise ExtractionError(f"--cells {options.cells!r}: choose {' or '.join(CELLS)}.")
    crop = options.cells == "crop"
    if crop:
        check_crop_size(options.crop_size)
    if options.glance not in GLANCES:
        raise ExtractionError(f"--glance {options.glance!r}: choose {' or '.join(GLANCES)}.")
    lowres = options.glance == "lowres"
    if lowres and not crop:
        raise ExtractionError("--glance lowres needs --cells crop (a full-frame store's periphery is the "
                              "channel-group means of its cells).")
    if lowres:
        check_glance_size(options.glance_size)
    backbone = Backbone.build(options.weights, options.seed, options.device)
    for note in backbone.notes:
        print(f"note: {note}", file=sys.stderr)
    records = options.shard.select(clips.records) if options.shard else list(clips.records)
    if not records:
        raise ExtractionError(f"Shard {options.shard} of {len(clips.records)} clips is empty; use fewer shards.")
    writer = StoreWriter.open(
        out,
        class_names=clips.class_names,
        records=records,
        frames=sampling.frames,
        grid=GRID,
        feature_dim=FEATURE_DIM,
        settings={
            **store_settings(clips, sampling, backbone.identity, options.shard),
            **cell_settings(options.cells, options.crop_size, backbone.trunk),
        },
        subsets=clips.subsets,
        splits=clips.splits,
        with_core=clips.actors is not None,
        glance=(lowres_glance_description(options.glance_size, backbone.trunk) if lowres
                else glance_description(sampling.size) if crop else None),
    )
    done_before = len(writer.done)
    pending = writer.pending_rows()
    batch_size = options.batch_size or (128 if backbone.device.type == "cuda" else 32)
    for row in pending:  # missing on disk: nothing to decode
        record = writer.records[row]
        if record.source is None:
            writer.mark_failed(row, clips.missing.get(record.video_id, "video missing on disk"))
    jobs = [(row, writer.records[row].source) for row in pending if row not in writer.failed]
    assert all(src is not None for _, src in jobs)
    return Plan(out, writer, sampling, backbone, batch_size, pending, jobs, done_before, clips.actors,  # type: ignore[arg-type]
                options.crop_size if crop else None, options.glance_size if lowres else None)


#: (row, frame) of each filled batch position
Slots = list[tuple[int, int]]


class ClipAssembler:
    """Packs decoded clips' frames into fixed-size batches and writes each clip once all its frames have
    features: the one per-clip write path of every pipeline (local or Ray).

    ``add(item)`` takes a decoded clip (``_ClipFrames`` item: ``row`` and ``frames`` / ``timestamps`` /
    ``valid_frames``, or ``row`` and ``error``) and yields the slots of every batch it fills: the batch is
    ``self.batch`` until the caller resumes the generator, so run (or copy) it before that. ``flush()`` yields
    the last, zero-padded batch. ``deliver(slots, features)`` hands the features of a batch back, in any
    order; finished clips (and failures) go to the store through a writer thread.
    """

    def __init__(self, plan: Plan, bar: tqdm, pin_memory: bool = False) -> None:
        self.plan = plan
        size = plan.sampling.size
        self.batch = torch.zeros((plan.batch_size, size, size, 3), dtype=torch.uint8, pin_memory=pin_memory)
        self._batch_array = self.batch.numpy()  # the same memory; takes tensors and arrays alike
        self._slots: Slots = []
        self._open: dict[int, dict[str, Any]] = {}
        self.done = 0
        self.frames = 0
        self.bar = bar
        self.writer_thread = _WriterThread()
        self.start = time.perf_counter()

    def add(self, item: dict[str, Any]) -> Iterator[Slots]:
        row, frames_per_clip = int(item["row"]), self.plan.sampling.frames
        if "error" in item:
            reason, writer = item["error"], self.plan.writer
            self.writer_thread.submit(lambda: writer.mark_failed(row, reason))
            self.bar.update(1)
            return
        frames = item["frames"]  # a tensor from a DataLoader, a (read-only) array from a Ray task
        self._open[row] = {
            "features": np.empty((frames_per_clip, GRID, GRID, FEATURE_DIM), dtype=np.float16),
            "remaining": frames_per_clip,
            "valid_frames": int(item["valid_frames"]),
            "timestamps": [float(t) for t in item["timestamps"]],
            "core": self._core(row, item),
            "periphery": self._glance(item),
        }
        for frame in range(frames_per_clip):
            self._batch_array[len(self._slots)] = frames[frame]
            self._slots.append((row, frame))
            if len(self._slots) == self.plan.batch_size:
                slots, self._slots = self._slots, []
                yield slots

    def _glance(self, item: dict[str, Any]) -> np.ndarray | None:
        """The clip's pixel glance: motion energy from the decoder, or the low-resolution pass run here."""
        if item.get("glance") is not None:
            return np.asarray(item["glance"], dtype=np.float32)
        return self.plan.clip_glance(item["frames"])

    def _core(self, row: int, item: dict[str, Any]) -> np.ndarray | None:
        """The clip's ground-truth core (T, K*K) from its actor boxes, None without them."""
        if self.plan.actors is None:
            return None
        track = self.plan.actors[self.plan.writer.records[row].video_id]
        return track.core([int(n) for n in item["frame_numbers"]], GRID)

    def flush(self) -> Iterator[Slots]:
        if self._slots:
            self.batch[len(self._slots) :].zero_()  # fixed batch shape; see the module docstring
            slots, self._slots = self._slots, []
            yield slots

    def deliver(self, slots: Slots, features: np.ndarray) -> None:
        """``features``: float16 ``(batch_size, 7, 7, 1024)`` of the batch whose positions are ``slots``."""
        for position, (row, frame) in enumerate(slots):
            clip = self._open[row]
            clip["features"][frame] = features[position]
            clip["remaining"] -= 1
            if clip["remaining"] == 0:
                self.writer_thread.submit(self._write(row, self._open.pop(row)))
                self.done += 1
                self.frames += self.plan.sampling.frames
                self.bar.update(1)
        elapsed = time.perf_counter() - self.start
        self.bar.set_postfix_str(f"{self.frames / elapsed:.1f} frames/s", refresh=False)

    def _write(self, row: int, clip: dict[str, Any]) -> Callable[[], None]:
        writer = self.plan.writer

        def job() -> None:
            writer.write_clip(
                row,
                clip["features"],
                valid_frames=clip["valid_frames"],
                timestamps=clip["timestamps"],
                core=clip["core"],
                periphery=clip["periphery"],
            )

        return job


def run_pipeline(
    plan: Plan, feed: Callable[[ClipAssembler], None], progress: bool, pin_memory: bool = False
) -> Summary:
    """Run ``feed`` (which decodes the plan's jobs, adds them to the assembler and runs its batches), then
    finish the writes, finalize the store and summarise. On Ctrl-C every finished clip is written first."""
    bar = tqdm(
        total=len(plan.pending),
        initial=len(plan.pending) - len(plan.jobs),
        unit="clip",
        desc=f"extract -> {plan.out.name}",
        disable=not progress,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    assembler = ClipAssembler(plan, bar, pin_memory)
    interrupted = False
    writer = plan.writer
    try:
        try:
            feed(assembler)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            try:
                assembler.writer_thread.close()  # the clips already finished are written even on Ctrl-C
            except KeyboardInterrupt:
                interrupted = True
        if not interrupted:
            writer.finalize()
    finally:
        writer.close()  # the store's write lock: the next run (a resume) may take it
    seconds = time.perf_counter() - assembler.start
    if interrupted:
        print(
            f"\nInterrupted: {len(writer.done)} of {len(writer.records)} clips are safely in '{plan.out}'. "
            "Run the same command again to resume; finished clips are kept.",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    return Summary(
        store=plan.out,
        clips_total=len(writer.records),
        clips_done_before=plan.done_before,
        clips_done=assembler.done,
        clips_failed=len(writer.failed),
        frames=assembler.frames,
        seconds=seconds,
        complete=True,
        weights=plan.backbone.identity,
        device=str(plan.backbone.device),
        failures=sorted(writer.failed.values(), key=lambda f: f["row"]),
    )


def extract(clips: ClipList, out: str | Path, options: ExtractOptions | None = None) -> Summary:
    """Extract ``clips`` into the store at ``out`` (creating it, or resuming it if it has the same settings).

    With ``workers > 0`` the decoding processes start from a fork server (see ``_worker_context``), so a
    script calling this must guard its entry point with ``if __name__ == "__main__":``.
    Raises ``ExtractionError`` for bad options, ``envs.store.StoreFormatError`` for a store made with
    other settings, and ``KeyboardInterrupt`` (after saving every finished clip) when interrupted.
    ``feature_extractors.distributed.extract_on_ray`` is the same on a Ray cluster.
    """
    options = options or ExtractOptions()
    plan = plan_extraction(clips, out, options)
    cuda = plan.backbone.device.type == "cuda"
    workers = default_workers() if options.workers is None else options.workers
    # the motion-energy glance is computed by the decoders; the low-resolution one needs the network
    motion_glance = plan.crop_size is not None and plan.lowres_size is None
    loader = DataLoader(
        _ClipFrames(plan.jobs, plan.sampling, glance=motion_glance),  # type: ignore[arg-type]
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        pin_memory=cuda,
        worker_init_fn=functools.partial(_worker_init, os.getpid()) if workers else None,
        multiprocessing_context=_worker_context() if workers else None,
    )

    def feed(assembler: ClipAssembler) -> None:
        def run(slots: Slots) -> None:
            assembler.deliver(slots, plan.features(assembler.batch))  # (B, 7, 7, 1024) float16

        for item in loader:
            for slots in assembler.add(item):
                run(slots)
        for slots in assembler.flush():
            run(slots)

    return run_pipeline(plan, feed, options.progress, pin_memory=cuda)


def bare_forward_rate(backbone: Backbone, batch_size: int, batches: int, warmup: int = 1) -> float:
    """Frames/s of the network alone on random uint8 batches (the benchmark's reference)."""
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (batch_size, INPUT_SIZE, INPUT_SIZE, 3), dtype=torch.uint8, generator=gen)
    if backbone.device.type == "cuda":
        batch = batch.pin_memory()
    for _ in range(warmup):
        backbone(batch)
    start = time.perf_counter()
    for _ in range(batches):
        backbone(batch)
    return batch_size * batches / (time.perf_counter() - start)


__all__ = [
    "ClipAssembler",
    "ExtractOptions",
    "Plan",
    "Shard",
    "Summary",
    "bare_forward_rate",
    "cell_settings",
    "decode_item",
    "decoder_init",
    "extract",
    "glance_description",
    "lowres_glance",
    "lowres_glance_description",
    "plan_extraction",
    "run_pipeline",
    "store_settings",
]
