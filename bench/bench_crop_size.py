"""How large a crop cell should be: linear probes of crop-cell stores of the rendered benchmark at several sizes.

    python -m feature_extractors render --variant moving --out data/rendered-moving
    python bench/bench_crop_size.py data/rendered-moving --sizes 32 48 64 96 --out data/crop-size

For each crop size, a crop-cell store of part of the rendered clips (``--shard``, ``--frames`` spread over each
clip, random GoogLeNet weights as everywhere offline) is extracted with the actor boxes, and the probes of
``agents.evaluation.probes`` score it: ``oracle_glimpse`` (one crop on the actor per frame, what a glimpse
policy that finds the actor reads), ``oracle`` (all of the actor's crops), ``mean`` (all 49 crops, which cost
49 crops a frame) and ``random`` (one crop anywhere). The size to pick buys the most of the ``oracle_glimpse``
probe per FLOP of a crop; the table gives the FLOPs of a crop and of a 30-frame clip read one crop a frame,
against GoogLeNet on 30 whole frames. Stores already extracted are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_CLIP_GFLOP = 30 * 2.995  # GoogLeNet to inception5b on 30 whole 224 px frames


def extract(render: Path, size: int, args: argparse.Namespace) -> Path:
    store = args.out / f"crop{size}"
    if (store / "meta.json").is_file() and json.loads((store / "meta.json").read_text()).get("complete"):
        return store
    cmd = [sys.executable, "-m", "feature_extractors", "hmdb51", "--videos", str(render / "videos"), "--splits",
           str(render / "splits"), "--actors", str(render / "actors.json"), "--out", str(store), "--weights",
           "random", "--cells", "crop", "--crop-size", str(size), "-T", str(args.frames), "--spread", "--shard",
           args.shard, "--no-progress", "--workers", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"extraction at {size} px failed:\n{proc.stderr[-2000:]}")
    return store


def main(argv: list[str] | None = None) -> None:
    from agents.evaluation.probes import probe_store

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("render", type=Path, help="a rendered benchmark (python -m feature_extractors render)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96])
    p.add_argument("--frames", type=int, default=6, help="frames per clip, spread over the clip (default 6)")
    p.add_argument("--shard", default="0/3", help="clips I, I+N, ... of the render (default 0/3: a third)")
    p.add_argument("--out", type=Path, default=Path("data/crop-size"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("| crop px | GFLOP per crop | GFLOP per clip, one crop a frame | of 30 whole frames | one actor crop "
          "(`oracle_glimpse`) | actor crops (`oracle`) | all 49 crops (`mean`) | one random crop |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        store = extract(args.render, size, args)
        meta = json.loads((store / "meta.json").read_text())
        crop = meta["cnn_flops_per_cell"] / 1e9
        probes = probe_store(store).accuracy
        print(f"| {size} | {crop:.3f} | {30 * crop:.2f} | 1/{FULL_CLIP_GFLOP / (30 * crop):.0f} | "
              f"{probes['oracle_glimpse']:.1%} | {probes['oracle']:.1%} | {probes['mean']:.1%} | "
              f"{probes['random']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
