"""Benchmark: extraction pipeline frames/s (decode + network + write) vs the bare network forward pass.

Writes HMDB-51-like clips (320 x 240, 30 fps, MPEG-4 in .avi, a few seconds each) to a temporary folder,
then, in one process and with one set of weights, alternates for ``--rounds`` rounds:

1. bare forward: the GoogLeNet trunk on random uint8 batches of the same batch size and frame count;
2. pipeline: ``feature_extractors.extract`` over the clips (worker decoding, network, store writes),
   timed from the first clip requested to the last one written.

The pipeline rate over the bare rate of the same round (median over the rounds) says how well
decoding and writing are hidden behind the network; the target is >= 0.90. Not a test: it prints
figures.

    python bench/bench_extract.py                    # CPU or GPU, whatever --device auto finds
    python bench/bench_extract.py --clips 64 --batch-size 128 --device cuda

With ``--ray [ADDRESS]`` each round instead runs the local pipeline and ``--ray`` extraction
(``feature_extractors.distributed``: decoding tasks + one network actor per GPU, else one CPU actor) on the
same clips and reports Ray frames/s over local frames/s (target >= 0.90; Ray's start-up is timed apart, the
actors' start is inside the Ray figure) and whether the two stores hold the same bytes (on CPU they must).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from feature_extractors import ExtractOptions, datasets, extract
from feature_extractors.backbone import Backbone
from feature_extractors.extract import bare_forward_rate, default_workers


def write_clip(path: Path, frames: int, fps: float, rng: np.random.Generator, size: tuple[int, int]) -> None:
    """A clip with textured, moving content (so the codec does real work, as with real footage)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit(f"cv2.VideoWriter cannot write XVID to {path}")
    background = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    for i in range(frames):
        frame = np.roll(background, shift=(2 * i, 3 * i), axis=(0, 1)).copy()
        x, y = (20 + 5 * i) % width, (40 + 3 * i) % height
        cv2.circle(frame, (x, y), 30, (255, 200, 50), -1)
        writer.write(frame)
    writer.release()


def make_dataset(root: Path, clips: int, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(clips):
        path = root / "clips" / f"clip{i:03d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, int(seconds * 30), 30.0, rng, (320, 240))
        lines.append(f"clips/{path.name} c{i % 4}")
    listing = root / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="clips to extract (default 16)")
    parser.add_argument("--seconds", type=float, default=3.5, help="length of each clip (default 3.5 s)")
    parser.add_argument("--frames", type=int, default=30, help="T (default 30)")
    parser.add_argument("--fps", type=float, default=10.0, help="sampling rate (default 10)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 128 on CUDA")
    parser.add_argument("--workers", type=int, default=None, help=f"decoding workers (default {default_workers()})")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurements (default 5)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the clips and store in this folder")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="compare --ray extraction with the local pipeline (default: local Ray)")
    args = parser.parse_args(argv)
    if args.ray is not None:
        return ray_main(args)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        listing = make_dataset(root, args.clips, args.seconds)
        print(
            f"wrote {args.clips} clips of {args.seconds} s (320x240, 30 fps, XVID) in {time.perf_counter() - t:.1f} s"
        )
        clips = datasets.video_list(listing)
        backbone = Backbone.build("random", device=args.device)
        batch = args.batch_size or (128 if backbone.device.type == "cuda" else 32)
        frames = args.clips * args.frames
        batches = -(-frames // batch)
        if frames % batch:
            print(
                f"note: {frames} frames is not a multiple of the batch size {batch}; the pipeline's last batch "
                "is padded, which lowers its rate a little"
            )
        opts = ExtractOptions(
            frames=args.frames,
            fps=args.fps,
            weights="random",
            device=args.device,
            batch_size=batch,
            workers=args.workers,
            progress=False,
        )
        # warm-up: oneDNN / cuDNN pick their kernels on the first batches of a shape
        warm = datasets.ClipList(clips.dataset, clips.class_names, clips.records[:2], clips.subsets)
        extract(warm, root / "warmup_store", opts)
        bare_forward_rate(backbone, batch, 2)

        # Alternate the two measurements: on a shared machine the load drifts, and a pipeline round is
        # compared with the bare round just before it. The median ratio over the rounds is the figure.
        bare_rates, pipeline_rates, ratios = [], [], []
        for round_ in range(args.rounds):
            bare_rates.append(bare_forward_rate(backbone, batch, batches, warmup=0))
            summary = extract(clips, root / f"store{round_}", opts)
            pipeline_rates.append(summary.frames_per_second)
            ratios.append(pipeline_rates[-1] / bare_rates[-1])
            print(
                f"round {round_ + 1}: bare forward {bare_rates[-1]:.1f} frames/s, pipeline "
                f"{pipeline_rates[-1]:.1f} frames/s ({summary.frames} frames in {summary.seconds:.1f} s), "
                f"ratio {ratios[-1]:.2f}"
            )
        workers = default_workers() if args.workers is None else args.workers
        print(
            f"\nmedian of {args.rounds} rounds (ratios {min(ratios):.2f} .. {max(ratios):.2f}):\n"
            f"| device | batch | workers | pipeline frames/s | bare forward frames/s | ratio |\n"
            f"|---|---|---|---|---|---|\n"
            f"| {device_name(backbone.device)} | {batch} | {workers} | {statistics.median(pipeline_rates):.1f} | "
            f"{statistics.median(bare_rates):.1f} | {statistics.median(ratios):.2f} |"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def ray_main(args: argparse.Namespace) -> int:
    """Rounds of (local pipeline, Ray pipeline) on the same clips; Ray stays up between rounds."""
    from agents.common.cluster import init_ray
    from feature_extractors.distributed import extract_on_ray

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        clips = datasets.video_list(make_dataset(root, args.clips, args.seconds))
        opts = ExtractOptions(frames=args.frames, fps=args.fps, weights="random", device=args.device,
                              batch_size=args.batch_size, workers=args.workers, progress=False)
        t = time.perf_counter()
        ray = init_ray(args.ray or None)
        print(f"Ray up in {time.perf_counter() - t:.1f} s: {ray.cluster_resources()}")
        warm = datasets.ClipList(clips.dataset, clips.class_names, clips.records[:2], clips.subsets)
        extract(warm, root / "warmup_store", opts)
        local_rates, ray_rates, ratios, same = [], [], [], []
        for round_ in range(args.rounds):
            local = extract(clips, root / f"local{round_}", opts)
            distributed = extract_on_ray(clips, root / f"ray{round_}", opts)
            local_rates.append(local.frames_per_second)
            ray_rates.append(distributed.frames_per_second)
            ratios.append(ray_rates[-1] / local_rates[-1])
            same.append((root / f"local{round_}" / "features.npy").read_bytes()
                        == (root / f"ray{round_}" / "features.npy").read_bytes())
            print(f"round {round_ + 1}: local {local_rates[-1]:.1f} frames/s ({local.seconds:.1f} s), Ray "
                  f"{ray_rates[-1]:.1f} frames/s ({distributed.seconds:.1f} s, {distributed.device}), ratio "
                  f"{ratios[-1]:.2f}, features identical: {same[-1]}")
            shutil.rmtree(root / f"local{round_}")
            shutil.rmtree(root / f"ray{round_}")
        print(
            f"\nmedian of {args.rounds} rounds (ratios {min(ratios):.2f} .. {max(ratios):.2f}), features "
            f"{'bit-identical in every round' if all(same) else 'DIFFERENT'}:\n"
            "| clips x frames | local frames/s | Ray frames/s | Ray / local |\n|---|---:|---:|---:|\n"
            f"| {args.clips} x {args.frames} | {statistics.median(local_rates):.1f} | "
            f"{statistics.median(ray_rates):.1f} | {statistics.median(ratios):.2f} |"
        )
        ray.shutdown()
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
