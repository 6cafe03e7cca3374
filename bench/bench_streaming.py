"""Benchmark: what a deployed hard-attention policy on a crop-cell store computes per clip, in wall time,
against the full-frame pipeline, in the same run.

For each of the first ``--clips`` test clips of a crop-cell store (``--cells crop``) the bench decodes the
store's source video again (``index.jsonl``'s ``source``, the sampling of ``meta.json``) and streams its T
sampled frames in order through two pipelines, one frame at a time (batch size 1, as a live system runs):

- full frame: decode + resize + GoogLeNet to ``inception5b`` on the whole 224 px frame (what a full-frame
  store costs per frame);
- attention: decode + resize + the store's glance (motion energy against the previous frame, or the
  low-resolution pass) + the one crop of the attended cell + the policy's step, which names the next cell.
  The observation is built as the env builds it (the store's float16 rounding included) and checked against
  ``StoreGlimpse-v0`` on the same clip, frame and cell: it must agree to float16 precision, which proves the
  stream computes what the store holds. The stream stops where the env's episode ends (all T frames, or
  fewer with a glimpse budget).

The pipelines alternate which goes first from clip to clip; one warm-up clip runs before the timed ones;
the checks and the env's steps are outside the timed spans. ``--threads`` (default 1) fixes torch's and
OpenCV's threads so the figure does not follow the machine's load. Without ``--run`` a random-cell policy
stands in (said in the output): the wall time and the FLOPs are the same, the accuracy is chance.

    python bench/bench_streaming.py --store data/store-motion-crop64 --clips 20
    python bench/bench_streaming.py --store data/mine-crop --run runs/<run folder> --json streaming.json

Reports ms per clip of each pipeline (mean over the clips), their ratio (full / attention), the CNN GFLOPs per
clip of each (the attention side from ``meta.json``: the glance's ``flops_per_frame`` plus
``cnn_flops_per_cell`` per watched frame; the full frame measured with ``FlopCounterMode``), the frames
watched, the policy's accuracy on the streamed observations, and each pipeline's ms per clip by stage
(decode, network; decode, glance, glimpse, policy). Prints a markdown table row. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import gymnasium
import numpy as np
import torch
from tqdm import tqdm

import envs  # noqa: F401  (registers StoreGlimpse-v0)
from agents.training.runs import git_commit
from envs.periphery import LOWRES_GLANCE_TRANSFORM, MOTION_ENERGY_TRANSFORM, motion_energy
from envs.store import FeatureStore, StoreError
from feature_extractors.backbone import INPUT_SIZE, Backbone, trunk_flops
from feature_extractors.decode import DecodeError, Sampling, decode_clip, stream_clip
from feature_extractors.errors import ExtractionError
from feature_extractors.extract import lowres_glance

#: Observations agree "to float16 precision": within 2 float16 steps (2 ** -9 relative), or 1e-3 near 0. The
#: store's crops ran 392 to a network call, the stream's one at a time: float32 sums in another order, then
#: rounded to float16, may land one step apart.
RTOL, ATOL = 2.0**-9, 1e-3
#: Env arguments of a run that this stream reproduces; others change what an observation holds.
STREAMABLE = {"split", "classes", "max_classes", "glimpse_budget", "initial_location", "observation_dtype",
              "reward_mode", "eta", "reward_positive", "reward_negative", "periphery_dim", "frames",
              "feature_dim", "num_classes"}  # fmt: skip


class BenchError(Exception):
    """A bad option or input; printed as one line with the fix."""


class RandomCellPolicy:
    """Stands in for a trained policy: a uniformly random next cell and class each step (seeded)."""

    def __init__(self, cells: int, classes: int, seed: int = 0) -> None:
        self.cells, self.classes = cells, classes
        self.rng = np.random.default_rng(seed)

    def reset(self, n: int) -> None:
        self.n = n

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, np.ndarray]:
        actions = np.stack([self.rng.integers(self.cells, size=self.n), self.rng.integers(self.classes, size=self.n)],
                           axis=1)
        return actions.astype(np.int64), np.full((self.n, self.classes), 1.0 / self.classes)


@dataclass
class Tally:
    """Per-clip wall times of one pipeline (ms)."""

    ms: list[float] = field(default_factory=list)

    def mean(self) -> float:
        return statistics.fmean(self.ms) if self.ms else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path, help="a crop-cell store (extracted with --cells crop)")
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained run folder (runs/...); without it a random-cell policy stands in")
    parser.add_argument("--clips", type=int, default=30, help="test clips to stream, the first ones (default: 30)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenCV threads (default: 1, so the figure does not depend on machine load)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="the GoogLeNet state_dict file, for a store extracted with --weights PATH")
    parser.add_argument("--batched", action="store_true",
                        help="also time the full-frame network on each whole clip as one batch (a second reference)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env resets and of the random policy")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips {args.clips}: use 1 or more")
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: use 1 or more")
    return args


def open_store(path: Path) -> FeatureStore:
    """The store, checked to be a finished crop-cell store with a glance this bench can stream."""
    if not (path / "meta.json").is_file():
        raise BenchError(f"--store {path}: no feature store there (no meta.json); extract one with "
                         "`python -m feature_extractors ... --cells crop --out DIR`")
    store = FeatureStore(path)
    meta = store.meta
    if not meta.get("complete"):
        raise BenchError(f"--store {path}: the extraction is not finished (meta.json complete is false); run its "
                         "command again to finish it")
    if meta.get("cells") != "crop":
        raise BenchError(f"--store {path}: cells are {meta.get('cells', 'full')!r}; this bench streams a crop-cell "
                         "store (extract with --cells crop)")
    transform = meta.get("periphery", {}).get("transform")
    if transform not in (MOTION_ENERGY_TRANSFORM, LOWRES_GLANCE_TRANSFORM):
        raise BenchError(f"--store {path}: its periphery {transform!r} is not a glance this bench computes "
                         f"({MOTION_ENERGY_TRANSFORM} or {LOWRES_GLANCE_TRANSFORM})")
    return store


def store_backbone(meta: dict[str, Any], weights_file: str | None) -> Backbone:
    """The network the store was extracted with, on the CPU (``meta.json``'s weights identity)."""
    identity = str(meta.get("weights", ""))
    if identity.startswith("random-init:seed="):
        return Backbone.build("random", int(identity.split("=", 1)[1]), "cpu")
    if identity.startswith("imagenet:"):
        return Backbone.build("imagenet", 0, "cpu")
    if weights_file is None:
        raise BenchError(f"the store's weights are {identity!r}: pass that file with --weights PATH")
    backbone = Backbone.build(weights_file, 0, "cpu")
    if backbone.identity != identity:
        raise BenchError(f"--weights {weights_file} is {backbone.identity!r}, the store's weights are {identity!r}")
    return backbone


def run_env_kwargs(run: Path) -> dict[str, Any]:
    """The env arguments a run was trained with that apply to a streamed store; refuses the others."""
    config_file = run / "config.json"
    if not config_file.is_file():
        raise BenchError(f"--run {run}: no config.json there; pass a run folder written by train_agent.py")
    kwargs = dict(json.loads(config_file.read_text()).get("env_kwargs", {}))
    kwargs.pop("data_root", None), kwargs.pop("subset", None)
    if kwargs.get("observation_mode", "glimpse") != "glimpse":
        raise BenchError(f"--run {run}: trained in {kwargs['observation_mode']!r} mode; a streamed policy reads "
                         "one cell a frame (observation_mode='glimpse')")
    kwargs.pop("observation_mode", None)
    if kwargs.get("glimpses_per_frame", 1) != 1:
        raise BenchError(f"--run {run}: glimpses_per_frame={kwargs['glimpses_per_frame']}; the stream takes one "
                         "glimpse a frame")
    kwargs.pop("glimpses_per_frame", None)
    if kwargs.pop("periphery_motion", False):
        raise BenchError(f"--run {run}: trained with periphery_motion=True, which needs every cell's features of "
                         "the previous frame; a stream that computes one crop a frame does not have them")
    unknown = sorted(set(kwargs) - STREAMABLE)
    if unknown:
        raise BenchError(f"--run {run}: env argument(s) {', '.join(unknown)} are not streamed by this bench")
    return kwargs


def _lap(stages: dict[str, float], stage: str, since: float) -> float:
    """Add the time since ``since`` to ``stage``; returns now."""
    now = time.perf_counter()
    stages[stage] = stages.get(stage, 0.0) + now - since
    return now


class Streamer:
    """The two pipelines on one store, with the env that checks the attention pipeline's observations."""

    def __init__(self, store: FeatureStore, backbone: Backbone, env: gymnasium.Env, policy: Any, seed: int) -> None:
        meta = store.meta
        self.store, self.backbone, self.env, self.policy, self.seed = store, backbone, env, policy, seed
        self.sampling = Sampling(frames=int(meta["frames"]), fps=meta["fps"], size=int(meta["input_size"]))
        self.crop_size = int(meta["crop_size"])
        self.glance = meta["periphery"]
        self.space = env.observation_space
        #: a policy trained blind (periphery_dim=0) gets no glance, and the stream computes none
        self.with_glance = "periphery" in self.space.spaces
        self.rows = {r.video_id: i for i, r in enumerate(store.records)}
        self.max_diff = {"glimpse": 0.0, "periphery": 0.0}
        self.checked = 0
        self.mismatches: list[str] = []
        #: seconds spent in each stage of each pipeline, summed over the clips
        self.stages: dict[str, dict[str, float]] = {"full_frame": {}, "attention": {}}

    def source(self, video_id: str) -> Path:
        record = self.store.records[self.rows[video_id]]
        if record.source is None or not Path(record.source).is_file():
            raise BenchError(f"video '{video_id}' of the store is not on disk at {record.source!r}: the bench decodes "
                             "the store's source videos; put them back where they were extracted from")
        return Path(record.source)

    def full_frame(self, path: Path) -> float:
        """ms to decode and run the network on every frame, one frame at a time."""
        stages = self.stages["full_frame"]
        start = mark = time.perf_counter()
        for frame in stream_clip(path, self.sampling):
            mark = _lap(stages, "decode", mark)
            self.backbone(torch.from_numpy(frame)[None])
            mark = _lap(stages, "network", mark)
        return 1e3 * (time.perf_counter() - start)

    def full_clip_batched(self, path: Path) -> float:
        """ms to decode the clip, then run the network on its T frames as one batch."""
        start = time.perf_counter()
        self.backbone(torch.from_numpy(decode_clip(path, self.sampling).frames))
        return 1e3 * (time.perf_counter() - start)

    def glance_of(self, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
        """The store's glance of one frame, float32 (7, 7, k); None for a blind policy."""
        if not self.with_glance:
            return None
        if self.glance["transform"] == MOTION_ENERGY_TRANSFORM:
            if previous is None:  # frame 0 has no previous frame: 0, as motion_energy gives it
                return np.zeros((*self.space["periphery"].shape[:2], 1), dtype=np.float32)
            return motion_energy(np.stack([previous, frame]))[1]
        return lowres_glance(self.backbone, torch.from_numpy(frame)[None], int(self.glance["size"]))[0]

    def observation(self, frame: np.ndarray, glance: np.ndarray | None, cell: int, t: int) -> dict[str, np.ndarray]:
        """The env's observation of frame ``t`` with its glimpse at ``cell``, computed from the pixels."""
        dtype = self.space["glimpse"].dtype
        glimpse = self.backbone.crop_cell(torch.from_numpy(frame), self.crop_size, cell).numpy()
        obs = {
            "glimpse": glimpse.astype(dtype),  # already float16, as the store holds it
            "location": np.int64(cell),
            "progress": np.array([t / self.sampling.frames, 0.0], dtype=np.float32),  # one glimpse a frame
        }
        if glance is not None:
            obs["periphery"] = glance.astype(np.float16).astype(dtype)  # the store's float16 rounding
        return obs

    def attention(self, clip: int) -> tuple[float, int, bool]:
        """Stream clip ``clip`` of the env's subset through the attention pipeline.

        Returns (ms, frames watched, whether the last prediction was right). The env steps alongside, outside
        the timed spans: its observations check the streamed ones, and its end of episode ends the stream.
        """
        expected, info = self.env.reset(seed=self.seed, options={"video_index": clip})
        path = self.source(info["video_id"])
        elapsed, watched, success, stages = 0.0, 0, False, self.stages["attention"]
        start = mark = time.perf_counter()
        frames: Iterator[np.ndarray] = stream_clip(path, self.sampling)
        self.policy.reset(1)
        cell, previous = int(expected["location"]), None
        for t, frame in enumerate(frames):
            mark = _lap(stages, "decode", mark)
            glance = self.glance_of(frame, previous)
            mark = _lap(stages, "glance", mark)
            obs = self.observation(frame, glance, cell, t)
            mark = _lap(stages, "glimpse", mark)
            actions, _ = self.policy.act({k: np.asarray(v)[None] for k, v in obs.items()}, deterministic=True)
            mark = _lap(stages, "policy", mark)
            elapsed += mark - start
            self.check(obs, expected, info["video_id"], t)
            expected, _, terminated, truncated, info = self.env.step(np.asarray(actions[0], dtype=np.int64))
            watched = t + 1
            if terminated or truncated:
                success = bool(info.get("is_success", False))
                break
            start = mark = time.perf_counter()
            cell, previous = int(actions[0][0]), frame
        frames.close()  # an episode that ends early stops decoding there
        return 1e3 * elapsed, watched, success

    def check(self, obs: dict[str, np.ndarray], expected: dict[str, np.ndarray], video_id: str, t: int) -> None:
        """Compare a streamed observation with the env's; records the largest differences and any mismatch."""
        self.checked += 1
        for key, value in obs.items():
            if not self.space[key].contains(value):
                self.mismatches.append(f"{video_id} frame {t}: {key} {np.asarray(value).dtype} "
                                       f"{np.shape(value)} is outside the env's space {self.space[key]}")
        for key in ("glimpse", "periphery") if self.with_glance else ("glimpse",):
            a, b = np.asarray(obs[key], np.float32), np.asarray(expected[key], np.float32)
            self.max_diff[key] = max(self.max_diff[key], float(np.abs(a - b).max()))
            if not np.allclose(a, b, rtol=RTOL, atol=ATOL):
                self.mismatches.append(f"{video_id} frame {t}: {key} differs from the store by up to "
                                       f"{float(np.abs(a - b).max()):.3g}")
        for key in ("location", "progress"):
            if not np.array_equal(obs[key], expected[key]):
                self.mismatches.append(f"{video_id} frame {t}: {key} {obs[key]} != the env's {expected[key]}")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    store = open_store(args.store)
    backbone = store_backbone(store.meta, args.weights)
    kwargs = run_env_kwargs(args.run) if args.run is not None else {}
    try:
        env = gymnasium.make("StoreGlimpse-v0", data_root=str(args.store), observation_mode="glimpse", subset="test",
                             **kwargs).unwrapped
    except (ValueError, StoreError) as exc:
        raise BenchError(f"StoreGlimpse-v0 cannot open --store {args.store} in glimpse mode: {exc}") from None
    if args.run is not None:
        from agents import load_policy

        policy: Any = load_policy(args.run)
        policy_name = f"trained: {args.run.name}"
    else:
        policy = RandomCellPolicy(env.action_space.nvec[0], env.action_space.nvec[1], args.seed)
        policy_name = "random cells (no --run: a stand-in, accuracy is chance)"
    streamer = Streamer(store, backbone, env, policy, args.seed)
    clips = min(args.clips, env.num_clips)
    meta, frames = store.meta, streamer.sampling.frames
    full, batched, attention = Tally(), Tally(), Tally()
    watched, right = [], 0
    try:
        # warm-up: first calls at each input size build the network's kernels; not timed
        first = streamer.source(env.reset(seed=args.seed, options={"video_index": 0})[1]["video_id"])
        streamer.full_frame(first), streamer.attention(0)
        if args.batched:
            streamer.full_clip_batched(first)
        streamer.checked, streamer.mismatches = 0, []
        streamer.stages = {"full_frame": {}, "attention": {}}
        for clip in tqdm(range(clips), desc="streaming", unit="clip", disable=not args.progress):
            path = streamer.source(str(env.source.video_ids(np.array([clip]))[0]))
            attention_first = clip % 2 == 1  # alternate the order: neither pipeline always runs on a warm cache
            if attention_first:
                ms, seen, ok = streamer.attention(clip)
            full.ms.append(streamer.full_frame(path))
            if not attention_first:
                ms, seen, ok = streamer.attention(clip)
            attention.ms.append(ms)
            watched.append(seen)
            right += ok
            if args.batched:
                batched.ms.append(streamer.full_clip_batched(path))
    except DecodeError as exc:
        raise BenchError(f"a source video of the store cannot be decoded: {exc}") from None
    except (RuntimeError, ValueError) as exc:
        if args.run is None:
            raise
        raise BenchError(f"--run {args.run}: its policy does not take this store's observations ({exc})") from None
    finally:
        env.close()
    full_flops = trunk_flops(backbone.trunk, INPUT_SIZE)
    glance_flops = float(meta["periphery"]["flops_per_frame"]) if streamer.with_glance else 0.0
    attention_flops = float(meta["cnn_flops_per_cell"]) + glance_flops
    mean_watched = statistics.fmean(watched)
    stages = {name: {stage: 1e3 * total / clips for stage, total in spent.items()}
              for name, spent in streamer.stages.items()}
    result: dict[str, Any] = {
        "store": str(args.store),
        "glance": ({k: meta["periphery"][k] for k in ("transform", "dim", "size") if k in meta["periphery"]}
                   if streamer.with_glance else {"transform": "none (the policy reads no periphery)"}),
        "crop_size": meta["crop_size"],
        "weights": meta["weights"],
        "policy": policy_name,
        "clips": clips,
        "frames_per_clip": frames,
        "frames_watched": mean_watched,
        "threads": args.threads,
        "pipelines": {
            "full_frame": {"ms_per_clip": full.mean(), "ms_per_frame": full.mean() / frames,
                           "gflops_per_clip": frames * full_flops / 1e9, "stages_ms_per_clip": stages["full_frame"]},
            "attention": {"ms_per_clip": attention.mean(), "ms_per_watched_frame": attention.mean() / mean_watched,
                          "gflops_per_clip": mean_watched * attention_flops / 1e9,
                          "stages_ms_per_clip": stages["attention"]},
        },
        "ratio": full.mean() / attention.mean(),
        "accuracy": right / clips,
        "observations": {"checked": streamer.checked, "matched": not streamer.mismatches,
                         "max_abs_diff": streamer.max_diff, "mismatches": streamer.mismatches[:10],
                         "tolerance": {"rtol": RTOL, "atol": ATOL}},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU core(s), {torch.get_num_threads()} torch thread(s), "
                   "CPU only",
        "commit": git_commit() or "unknown",
    }
    if args.batched:
        result["pipelines"]["full_clip_batched"] = {"ms_per_clip": batched.mean(),
                                                    "gflops_per_clip": frames * full_flops / 1e9}
    return result


def table(result: dict[str, Any]) -> str:
    full, attention = result["pipelines"]["full_frame"], result["pipelines"]["attention"]
    head = ("| store | glance | policy | clips | T | frames watched | full frame ms/clip | attention ms/clip | "
            "full / attention | GFLOP/clip full | GFLOP/clip attention | accuracy | observations = store |")
    glance = result["glance"]["transform"].split("/")[0] + (f" {result['glance']['size']} px"
                                                            if "size" in result["glance"] else "")
    row = (f"| {Path(result['store']).name} | {glance} | {result['policy'].split(' (')[0]} | {result['clips']} | "
           f"{result['frames_per_clip']} | {result['frames_watched']:.1f} | {full['ms_per_clip']:.0f} | "
           f"{attention['ms_per_clip']:.0f} | {result['ratio']:.2f}x | {full['gflops_per_clip']:.1f} | "
           f"{attention['gflops_per_clip']:.1f} | {result['accuracy']:.1%} | "
           f"{'yes' if result['observations']['matched'] else 'NO'} ({result['observations']['checked']} steps) |")
    return head + "\n|" + "---|" * head.count(" | ") + "---|\n" + row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = bench(args)
    except (BenchError, ExtractionError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.run is None:
        print("note: no --run given; a random-cell policy stands in (same computation, chance accuracy)")
    if result["clips"] < args.clips:
        print(f"note: --clips {args.clips}, but the store's test subset has {result['clips']} clip(s): all streamed")
    print(f"{result['clips']} clips of {result['store']}, {result['threads']} thread(s), commit {result['commit']}")
    if "full_clip_batched" in result["pipelines"]:
        print(f"full frame, whole clip batched: {result['pipelines']['full_clip_batched']['ms_per_clip']:.0f} ms/clip")
    for name, label in (("full_frame", "full frame"), ("attention", "attention")):
        spent = result["pipelines"][name]["stages_ms_per_clip"]
        print(f"{label} ms/clip by stage: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in spent.items()))
    observations = result["observations"]
    if not observations["matched"]:
        print("streamed observations differ from the store:\n  " + "\n  ".join(observations["mismatches"]))
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if observations["matched"] else 1


if __name__ == "__main__":
    sys.exit(main())
