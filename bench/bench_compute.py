"""Accuracy against the CNN compute a policy needs, on the rendered benchmark: full-frame against crop cells.

    python -m feature_extractors render --variant motion --out data/rendered-motion
    R=data/rendered-motion
    python -m feature_extractors hmdb51 --videos $R/videos --splits $R/splits --actors $R/actors.json \\
        --weights random --out data/store-motion
    python -m feature_extractors hmdb51 --videos $R/videos --splits $R/splits --actors $R/actors.json \\
        --weights random --cells crop --crop-size 64 --out data/store-motion-crop64
    python -m feature_extractors hmdb51 --videos $R/videos --splits $R/splits --actors $R/actors.json \\
        --weights random --cells crop --crop-size 64 --glance lowres --out data/store-motion-crop64-lowres
    python bench/bench_compute.py --full data/store-motion --crop data/store-motion-crop64 \\
        --crop-lowres data/store-motion-crop64-lowres --logdir runs/compute --seeds 0 1 2 --workers 2

Each row is one training run (``train_agent.py``) per seed on ``HMDB51Glimpse-v0`` (split 1) with the algorithm's
shipped hyperparameters for store envs; the table and the Pareto front use each row's mean over the seeds (one
run's test accuracy on 90 clips moves by several points from seed to seed). Full-frame rows: the policies of
Table I (their CNN is the whole GoogLeNet on every frame, whatever they look at). Crop-cell rows: glimpse agents
that read one crop cell per frame and the pixel glance, and the same agent with an early exit at several per-frame
costs (``frame_cost``). All runs are then evaluated by ``evaluate.py --compare`` (the leaderboard of every run and
``accuracy_vs_flops.png`` land in ``--logdir``), and the table is printed from its ``leaderboard.json``, with
``accuracy_vs_compute.png`` (the rows' means and their Pareto front) and the targets:

- a hard-attention policy on crop cells reaches >= 90 % of the best full-frame policy's test accuracy (the
  oracle included) at <= 1/10 of its CNN GFLOPs per clip;
- with early exit, the Pareto front has at least three points between 1/30 and 1/5 of the full-frame cost.

Runs whose folder (``<row>__s<seed>``) already holds a ``result.json`` are not retrained.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import EVALUATE, ROOT, train_run

sys.path.insert(0, str(ROOT))

from agents.evaluation.images import Point, pareto_front, scatter_plot, write_png  # after the path insert

ENV = "HMDB51Glimpse-v0"
#: (run name, row label, algorithm, env kwargs) on the full-frame store
FULL_ROWS: list[tuple[str, str, str, list[str]]] = [
    ("full__mean_pool", "no attention: mean of all cells", "mean_pool", ["observation_mode=cube"]),
    ("full__soft_attention", "soft attention", "soft_attention", ["observation_mode=cube"]),
    ("full__reinforce_cube", "REINFORCE, cube", "reinforce", ["observation_mode=cube"]),
    ("full__reinforce_glimpse", "REINFORCE, glimpse + periphery with motion", "reinforce",
     ["observation_mode=glimpse", "periphery_motion=True"]),
    ("full__oracle", "oracle glimpses (actor box)", "oracle", ["observation_mode=glimpse", "periphery_motion=True"]),
]
#: the same on the crop-cell store with the motion glance (the periphery is the store's glance, from pixels)
CROP_ROWS: list[tuple[str, str, str, list[str]]] = [
    ("crop__reinforce_glimpse", "REINFORCE, one crop + motion glance per frame", "reinforce",
     ["observation_mode=glimpse"]),
    ("crop__oracle", "oracle crops (actor box) + motion glance", "oracle", ["observation_mode=glimpse"]),
]
#: on the crop-cell store with the low-resolution glance (``--crop-lowres``)
LOWRES_ROWS: list[tuple[str, str, str, list[str]]] = [
    ("lowres__reinforce_glimpse", "REINFORCE, one crop + low-res glance per frame", "reinforce",
     ["observation_mode=glimpse"]),
]


def early_exit_rows(costs: list[float], prefix: str, glance: str) -> list[tuple[str, str, str, list[str]]]:
    return [(f"{prefix}__reinforce_exit_{cost:g}",
             f"REINFORCE, crop + {glance} glance, early exit, frame_cost {cost:g}", "reinforce",
             ["observation_mode=glimpse", "early_exit=True", f"frame_cost={cost:g}"]) for cost in costs]


#: the plot's colour group of each store's rows
STORE_TAGS = {"full": "full-frame cells", "crop": "crop + motion glance", "lowres": "crop + low-res glance"}


def plot_label(row: str) -> str:
    """A short label for the figure (the table has the long one): ``crop__reinforce_exit_0.2`` -> ``exit 0.2``."""
    name = row.split("__", 1)[1]
    return name.replace("reinforce_exit_", "exit ").replace("reinforce_", "REINFORCE ").replace("_", " ")


def run_name(row: str, seed: int) -> str:
    return f"{row}__s{seed}"


def train(store: Path, row: str, algo: str, env_kwargs: list[str], seed: int, args: argparse.Namespace) -> float:
    """Train one row's run of ``seed`` unless its folder holds a result; the wall time in minutes (0: reused)."""
    name = run_name(row, seed)
    if (args.logdir / name / "result.json").is_file():
        return 0.0
    argv = ["--env", ENV, "--algo", algo, "--seed", str(seed), "--logdir", str(args.logdir), "--run-name", name,
            "--no-progress", "--threads", str(args.threads), "--env-kwargs", f"data_root={store}", *env_kwargs]
    if args.total_timesteps:
        argv += ["--total-timesteps", str(args.total_timesteps)]
    minutes = train_run(argv, name) / 60
    print(f"  {name}: {minutes:.1f} min", flush=True)
    return minutes


@dataclass
class RowResult:
    """One row over its seeds: the means, and the accuracies of the seeds."""

    label: str
    cells: str
    accuracies: list[float]
    frames: float
    cnn_flops: float
    minutes: float

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.accuracies))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", type=Path, required=True, help="full-frame store (extracted with --actors)")
    p.add_argument("--crop", type=Path, required=True, help="crop-cell store of the same videos (motion glance)")
    p.add_argument("--crop-lowres", type=Path, default=None,
                   help="crop-cell store of the same videos with the low-resolution glance (--glance lowres)")
    p.add_argument("--costs", type=float, nargs="*", default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
                   help="frame_cost of the early-exit rows (default: 0.05 0.1 0.15 0.2 0.25 0.3)")
    p.add_argument("--logdir", type=Path, default=Path("runs/compute"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per row and seed (default 0 1 2)")
    p.add_argument("--workers", type=int, default=1, help="runs trained at once (each with --threads threads)")
    p.add_argument("--total-timesteps", type=int, default=None, help="env steps per run (default: shipped)")
    p.add_argument("--only", choices=("full", "crop", "lowres"), default=None,
                   help="train one store's rows only, no comparison")
    args = p.parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)
    plan = [(args.full, row) for row in FULL_ROWS]
    plan += [(args.crop, row) for row in CROP_ROWS + early_exit_rows(args.costs, "crop", "motion")]
    if args.crop_lowres is not None:
        plan += [(args.crop_lowres, row) for row in LOWRES_ROWS + early_exit_rows(args.costs, "lowres", "low-res")]
    plan = [(store, row) for store, row in plan if args.only is None or row[0].startswith(args.only)]
    jobs = [(store, row, seed) for store, row in plan for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:  # each job is its own process
        spent = list(pool.map(lambda job: train(job[0], job[1][0], job[1][2], job[1][3], job[2], args), jobs))
    minutes = {row[0]: 0.0 for _, row in plan}
    for (_, row, _), m in zip(jobs, spent, strict=True):
        minutes[row[0]] += m / len(args.seeds)
    if args.only:
        return
    runs = [str(args.logdir / run_name(row[0], seed)) for _, row, seed in jobs]
    cmd = [*EVALUATE, "--compare", *runs, "--out", str(args.logdir), "--no-progress", "--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"evaluate.py --compare failed:\n{proc.stderr[-2000:]}")
    by_run = {r["run"]: r for r in json.loads((args.logdir / "leaderboard.json").read_text()) if r["status"] == "ok"}
    results: dict[str, RowResult] = {}
    for _, (row, label, _, _) in plan:
        got = [by_run[run_name(row, seed)] for seed in args.seeds if run_name(row, seed) in by_run]
        if got:
            results[row] = RowResult(label, got[0]["cnn_cells"], [r["accuracy"] for r in got],
                                     float(np.mean([r["frames_watched_per_clip"] for r in got])),
                                     float(np.mean([r["cnn_flops_per_clip"] for r in got])), minutes[row])
    full_cost = next(iter(by_run.values()))["cnn_flops_full_clip"]
    front = pareto_front([Point(r.cnn_flops, r.accuracy, row) for row, r in results.items()])
    on_front = {p.label for p in front}
    points = [Point(r.cnn_flops / 1e9, 100 * r.accuracy, plot_label(row), STORE_TAGS[row.split("__")[0]])
              for row, r in results.items()]
    image = scatter_plot(points, "CNN GFLOP per clip", "test accuracy (%, mean of seeds)",
                         f"Accuracy against CNN compute, mean of seeds {' '.join(map(str, args.seeds))}", front=True)
    figure = args.logdir / "accuracy_vs_compute.png"
    write_png(figure, image)
    print(f"\nCNN cost of the full-frame pipeline: {full_cost / 1e9:.1f} GFLOP per clip (GoogLeNet on 30 frames)")
    print(f"seeds {' '.join(map(str, args.seeds))}; accuracy: mean (lowest - highest seed)\n")
    print("| model | cells | test accuracy | frames watched | CNN GFLOP/clip | of full-frame | Pareto "
          "| minutes per run |")
    print("|---|---|---:|---:|---:|---:|:---:|---:|")
    for _, (row, label, _, _) in plan:
        r = results.get(row)
        if r is None:
            print(f"| {label} | | failed | | | | | |")
            continue
        spread = f"{min(r.accuracies):.1%} - {max(r.accuracies):.1%}" if len(r.accuracies) > 1 else "one seed"
        print(f"| {label} | {r.cells} | {r.accuracy:.1%} ({spread}) | {r.frames:.1f} | {r.cnn_flops / 1e9:.2f} | "
              f"1/{full_cost / r.cnn_flops:.1f} | {'x' if row in on_front else ''} | "
              f"{f'{r.minutes:.1f}' if r.minutes else '-'} |")
    best_full = max(r.accuracy for row, r in results.items() if row.startswith("full__"))
    cheap = [r.accuracy for row, r in results.items() if not row.startswith("full__") and "oracle" not in row
             and r.cnn_flops <= full_cost / 10]
    best_cheap = max(cheap, default=0.0)
    verdict = "met" if best_cheap >= 0.9 * best_full else "NOT met"
    print(f"\naccuracy target (a learned crop-cell policy at <= 1/10 of the CNN reaches >= 90 % of the best "
          f"full-frame policy): {verdict} ({best_cheap:.1%} against {0.9 * best_full:.1%} = 90 % of {best_full:.1%})")
    in_range = [p.label for p in front if full_cost / 30 <= p.x <= full_cost / 5]
    verdict = "met" if len(in_range) >= 3 and any("exit" in n for n in in_range) else "NOT met"
    print(f"Pareto target (>= 3 Pareto points between 1/30 and 1/5 of the full-frame cost, with early exit): "
          f"{verdict} "
          f"({', '.join(in_range) or 'none'})")
    print(f"\nleaderboard (every run) and accuracy_vs_flops.png: {args.logdir}; the means: {figure}")


if __name__ == "__main__":
    main()
