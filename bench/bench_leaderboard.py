"""Leaderboard of every algorithm on the default synthetic benchmark, with the compute columns.

    python bench/bench_leaderboard.py                              # train all (resumable), then compare
    python bench/bench_leaderboard.py --timesteps 200000 --jobs 2  # one env-step budget for every algorithm
    python bench/bench_leaderboard.py --skip-train                 # only (re)build the leaderboard
    python bench/bench_leaderboard.py --runs runs/leaderboard/* --out runs/leaderboard   # rank a sweep's runs

Trains each entry of ``--algos`` with ``train_agent.py`` on ``SyntheticGlimpse-v0`` (default settings: 51
classes, 30 frames, 7 x 7 x 1024 features) into ``--out``: the hard-attention agents in both observation
modes (``cube``: they may read every cell to choose the next glimpse; ``glimpse``: they never read a cell they
do not look at), ``soft_attention`` and ``mean_pool`` on the cube, the fixed glimpse baselines in glimpse mode.
A finished run (its ``result.json`` exists) is kept; an interrupted one is resumed. Then ``evaluate.py
--compare`` writes ``leaderboard.md``, ``leaderboard.json`` and ``accuracy_vs_flops.png`` into ``--out`` and
this script prints the leaderboard and checks the paper's claim: a hard-attention agent in glimpse mode
reaches >= 90 % of ``soft_attention``'s accuracy at <= 1/10 of its attention-model FLOPs and cells read.
Figures are printed, not asserted (this is a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, TRAIN

sys.path.insert(0, str(ROOT))

ENV_ID = "SyntheticGlimpse-v0"
HARD = ("reinforce", "lstm_ppo", "ppo", "a2c", "recurrent_ppo")  # learned hard glimpses: both modes
CUBE_ONLY = ("soft_attention", "mean_pool")
FIXED = ("random", "center", "oracle")
DEFAULT_ALGOS = HARD + CUBE_ONLY + FIXED


def entries(algos: list[str]) -> list[tuple[str, str]]:
    """(algo, observation_mode) pairs to train."""
    out = []
    for algo in algos:
        if algo in CUBE_ONLY:
            out.append((algo, "cube"))
        elif algo in FIXED:
            out.append((algo, "glimpse"))
        else:
            out += [(algo, "cube"), (algo, "glimpse")]
    return out


def train(algo: str, mode: str, args: argparse.Namespace) -> tuple[str, float, int]:
    """Train (or resume) one run; returns (run name, seconds, exit status)."""
    name = f"{ENV_ID}__{algo}__{mode}__{args.seed}"
    folder = args.out / name
    if (folder / "result.json").is_file():
        return name, 0.0, 0
    cmd = [*TRAIN, "--no-progress", "--threads", str(args.threads)]
    if (folder / "config.json").is_file():
        cmd += ["--resume", str(folder)]
    else:
        cmd += ["--algo", algo, "--env", ENV_ID, "--env-kwargs", f"observation_mode={mode}", "--seed", str(args.seed),
                "--logdir", str(args.out), "--run-name", name, "--eval-clips", str(args.eval_clips)]
    if args.timesteps is not None:
        cmd += ["--total-timesteps", str(args.timesteps)]
    start = time.perf_counter()
    with open(args.out / f"{name}.log", "a") as log:
        status = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    return name, time.perf_counter() - start, status


def claim_check(rows: list[dict]) -> list[str]:
    """The paper's claim, measured: hard attention (glimpse mode) vs soft attention, on accuracy, feature values
    read and FLOPs (attention model alone, and with the CNN, which every policy on extracted features pays in
    full per frame)."""
    ok = [r for r in rows if r["status"] == "ok"]
    soft = next((r for r in ok if r["algo"] == "soft_attention"), None)
    hard = [r for r in ok if r["algo"] in HARD and r["obs"] != "cube"]
    if soft is None or not hard:
        return ["claim check: needs a soft_attention run and a hard-attention run in glimpse mode"]
    lines = []
    for r in sorted(hard, key=lambda r: -r["accuracy"]):
        acc = r["accuracy"] / soft["accuracy"] if soft["accuracy"] else float("inf")
        values = r["feature_values_read_per_clip"] / soft["feature_values_read_per_clip"]
        flops = r["attention_flops_per_clip"] / soft["attention_flops_per_clip"]
        total = ((r["attention_flops_per_clip"] + r["cnn_flops_per_clip"])
                 / (soft["attention_flops_per_clip"] + soft["cnn_flops_per_clip"]))
        reads = acc >= 0.9 and values <= 0.1
        lines.append(f"{r['algo']} ({r['obs']}): {acc:.0%} of soft_attention's accuracy "
                     f"({100 * r['accuracy']:.1f}% vs {100 * soft['accuracy']:.1f}%), {values:.3f}x its feature "
                     f"values read, {flops:.2f}x its attention FLOPs, {total:.3f}x its FLOPs with the CNN -> "
                     f">= 90 % of the accuracy at <= 1/10 of the values read {'holds' if reads else 'does not hold'}"
                     f"; at <= 1/10 of the FLOPs {'holds' if acc >= 0.9 and total <= 0.1 else 'does not hold'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench", help="folder of the runs")
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_ALGOS), help="algorithms to train")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="env steps for every algorithm (default: each algorithm's own default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--eval-clips", type=int, default=256, help="test clips of the periodic training evaluations")
    parser.add_argument("--episodes", type=int, default=None, help="evaluate on N test clips (default all 1,530)")
    parser.add_argument("--skip-train", action="store_true", help="only build the leaderboard")
    parser.add_argument("--runs", nargs="+", type=Path, default=None, metavar="RUN",
                        help="rank these run folders (e.g. a sweep's: runs/leaderboard/*) instead of training; "
                             "the leaderboard goes to --out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = entries(args.algos)
    if not args.skip_train and args.runs is None:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for name, seconds, status in pool.map(lambda e: train(*e, args), todo):
                print(f"{name}: {'ok' if status == 0 else f'FAILED (exit {status})'} in {seconds:.0f} s",
                      flush=True)
    from agents.evaluation import cli as evaluate_cli

    folders = ([str(run) for run in args.runs if run.is_dir()] if args.runs is not None
               else [str(args.out / f"{ENV_ID}__{a}__{m}__{args.seed}") for a, m in todo])
    compare_args = ["--compare", *folders, "--out", str(args.out), "--no-progress", "--maps", "2"]
    if args.episodes:
        compare_args += ["--episodes", str(args.episodes)]
    evaluate_cli.main(compare_args)
    rows = json.loads((args.out / "leaderboard.json").read_text())
    print("\n".join(claim_check(rows)))
    print(f"leaderboard: {args.out / 'leaderboard.md'}; plot: {args.out / 'accuracy_vs_flops.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
