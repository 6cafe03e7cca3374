"""Feature extraction on Ray (``python -m feature_extractors ... --ray [ADDRESS]``).

What runs where: the driver (the machine that runs the command) reads the clip list, loads the weights
once, opens the store and writes every clip into it; each clip is decoded by a Ray task anywhere in the
cluster (so the videos must be readable at the same path on every node, e.g. a shared filesystem);
GoogLeNet runs in actors, one per GPU where the cluster has GPUs (half precision), else CPU actors. The
weights travel to the actors through Ray's object store, so only the driver needs the weights file.
Features come back to the driver, which packs, writes and marks clips exactly as the local pipeline does
(the same :class:`~feature_extractors.extract.ClipAssembler`): the same store, bit-identical on CPU.

Clips are decoded and batched in list order, and batches have one fixed shape, so a clip's features do
not depend on which actor computed them. Killed worker processes are retried by Ray (decoding tasks and
actor calls are idempotent); a killed driver loses only the clips in flight, and running the same command
again resumes after the finished ones.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.common.cluster import ray_session

from .backbone import INPUT_SIZE, Backbone, GoogLeNetTrunk
from .datasets import ClipList
from .decode import Sampling
from .errors import ExtractionError
from .extract import (
    ClipAssembler,
    ExtractOptions,
    Slots,
    Summary,
    decode_item,
    decoder_init,
    plan_extraction,
    run_pipeline,
)

#: Batches queued on each network actor (one computing, one waiting: the actor never idles on the driver).
BATCHES_IN_FLIGHT = 2
#: Ray retries of a killed worker's task / of an actor that died.
RETRIES = 3


def _decode(row: int, source: str, sampling: Sampling) -> dict[str, Any]:
    decoder_init()
    item = decode_item(row, source, sampling)
    if "frames" in item:
        item["frames"] = item["frames"].numpy()  # numpy travels zero-copy through the object store
    return item


class _Network:
    """GoogLeNet on one device; ``forward`` maps a uint8 ``(B, 224, 224, 3)`` batch to float16 features."""

    def __init__(self, trunk: GoogLeNetTrunk, identity: str, device: str, threads: int | None, batch_size: int) -> None:
        if device == "cpu":
            # Ray limits a worker to the CPUs it reserved (1); the network may use more (see --ray-threads).
            from agents.common.devices import set_threads

            set_threads(threads or os.cpu_count() or 1)
        self.backbone = Backbone.from_trunk(trunk, identity, torch.device(device))
        # oneDNN / cuDNN choose their kernels on the first batch of a shape: do it before the clips arrive
        self.backbone(torch.zeros((batch_size, INPUT_SIZE, INPUT_SIZE, 3), dtype=torch.uint8))

    def ready(self) -> bool:
        return True

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.backbone(torch.from_numpy(batch)).numpy()


def _network_placement(ray: Any, device: str, actors: int | None) -> tuple[str, int]:
    """(actor device, number of actors) for ``--device`` on this cluster."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if device == "cuda" and gpus == 0:
        raise ExtractionError("--device cuda with --ray: the Ray cluster has no GPU; use --device cpu or auto.")
    if device not in ("auto", "cpu", "cuda"):
        raise ExtractionError(f"--device {device!r} with --ray: choose auto, cpu or cuda (one actor per GPU).")
    kind = "cuda" if device != "cpu" and gpus > 0 else "cpu"
    count = actors or (gpus if kind == "cuda" else 1)
    if kind == "cuda" and count > gpus:
        raise ExtractionError(f"--ray-actors {count}: the Ray cluster has {gpus} GPU(s); one actor per GPU at most.")
    return kind, count


def extract_on_ray(
    clips: ClipList,
    out: str | Path,
    options: ExtractOptions | None = None,
    *,
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
) -> Summary:
    """:func:`~feature_extractors.extract.extract` on Ray: same store, same resume, same failures.

    ``address``: a cluster's head (``HOST:PORT``, ``auto``), else ``$RAY_ADDRESS``, else local Ray on this
    machine. ``actors``: network actors (default one per GPU, or one CPU actor). ``threads``: torch threads
    of a CPU actor (default: all cores of its node, as the local pipeline uses).
    """
    options = options or ExtractOptions()
    if options.cells != "full":
        raise ExtractionError(f"--cells {options.cells} runs on this machine only: leave out --ray.")
    with ray_session(address) as ray:
        kind, count = _network_placement(ray, options.device, actors)
        # The driver only loads the weights (their identity goes into the store); the actors run them.
        plan = plan_extraction(clips, out, dataclasses.replace(options, device="cpu"))
        plan.batch_size = options.batch_size or (128 if kind == "cuda" else 32)
        trunk = ray.put(plan.backbone.trunk)
        network = ray.remote(_Network).options(
            num_cpus=1, num_gpus=1 if kind == "cuda" else 0, max_restarts=RETRIES, max_task_retries=RETRIES
        )
        pool = [network.remote(trunk, plan.backbone.identity, kind, threads, plan.batch_size) for _ in range(count)]
        ray.get([actor.ready.remote() for actor in pool])  # started and warm, as the local network is
        decode = ray.remote(_decode).options(num_cpus=1, max_retries=RETRIES)
        sampling = ray.put(plan.sampling)
        # enough decoded clips queued to fill every actor's batches
        window = max(4, count * BATCHES_IN_FLIGHT * -(-plan.batch_size // plan.sampling.frames) + 1)

        def feed(assembler: ClipAssembler) -> None:
            jobs = iter(plan.jobs)
            decoding: collections.deque[tuple[int, Any]] = collections.deque()
            computing: collections.deque[tuple[Slots, Any]] = collections.deque()
            turn = 0

            def collect() -> None:
                done_slots, ref = computing.popleft()
                try:
                    features = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the actor died more than RETRIES times
                    raise ExtractionError(
                        f"the GoogLeNet actor failed ({str(exc).splitlines()[0]}); finished clips are kept in "
                        f"'{plan.out}': run the same command again to resume"
                    ) from None
                assembler.deliver(done_slots, features)

            def run(slots: Slots) -> None:
                nonlocal turn
                # .remote() copies the batch into the object store now, so the buffer can be refilled
                computing.append((slots, pool[turn % count].forward.remote(assembler.batch.numpy())))
                turn += 1
                while len(computing) > count * BATCHES_IN_FLIGHT:
                    collect()

            def top_up() -> None:
                for row, source in jobs:
                    decoding.append((row, decode.remote(row, source, sampling)))
                    if len(decoding) >= window:
                        return

            top_up()
            while decoding:
                row, ref = decoding.popleft()
                try:
                    item = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the decoding worker died RETRIES + 1 times
                    item = {"row": row, "error": f"decoding worker failed: {str(exc).splitlines()[0]}"}
                top_up()
                for slots in assembler.add(item):
                    run(slots)
            for slots in assembler.flush():
                run(slots)
            while computing:
                collect()

        summary = run_pipeline(plan, feed, options.progress)
    return dataclasses.replace(summary, device=f"Ray: {count} {kind} actor(s)")


__all__ = ["extract_on_ray"]
