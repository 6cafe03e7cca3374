"""Benchmark: N independent short trials as a Ray Tune sweep on local Ray vs one after another in one process.

    python bench/bench_sweep.py                                   # 6 trials of 200k steps, local Ray, 2 CPUs
    python bench/bench_sweep.py --trials 4 --timesteps 50000 --cpus 2

Both sides train the same trials (``reinforce`` on ``SyntheticGlimpse-v0``, seeds 0..N-1, one torch thread
each, evaluation on ``--eval-clips`` test clips at the end) with ``train_agent.py``'s code: sequentially via
``agents.training.cli.main`` in this process, and through ``python -m agents.training.sweep``'s ``main`` (Ray start-up,
Tune, one trial per CPU at a time, Ray shut-down all included). Prints both wall times and the ratio
(target >= 1.6x with 2 CPUs) with the machine's load average, since on a shared machine the other jobs
take cores from either side. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENV_ID = "SyntheticGlimpse-v0"


def trial_kwargs(args: argparse.Namespace) -> list[str]:
    return [f"num_classes={args.classes}", "observation_mode=cube"]


def sequential(args: argparse.Namespace, out: Path) -> float:
    from agents.training import cli as train_cli

    start = time.perf_counter()
    for seed in range(args.trials):
        argv = ["--algo", "reinforce", "--env", ENV_ID, "--env-kwargs", *trial_kwargs(args), "--seed", str(seed),
                "--total-timesteps", str(args.timesteps), "--eval-every", "0", "--eval-clips", str(args.eval_clips),
                "--logdir", str(out), "--run-name", f"seq{seed}", "--threads", "1", "--no-progress"]
        assert train_cli.main(argv) == 0
    return time.perf_counter() - start


def on_ray(args: argparse.Namespace, out: Path) -> float:
    from agents.training import sweep

    start = time.perf_counter()
    argv = ["--algos", "reinforce", "--env", ENV_ID, "--env-kwargs", *trial_kwargs(args), "--seeds",
            *map(str, range(args.trials)), "--total-timesteps", str(args.timesteps), "--eval-every", "0",
            "--eval-clips", str(args.eval_clips), "--out", str(out), "--cpus", str(args.cpus)]
    assert sweep.main(argv) == 0
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="trials (seeds) on each side (default 6)")
    parser.add_argument("--timesteps", type=int, default=200_000,
                        help="env steps per trial (default 200,000: about 45 s each on one core here)")
    parser.add_argument("--classes", type=int, default=10, help="num_classes of the synthetic env (default 10)")
    parser.add_argument("--eval-clips", type=int, default=128, help="test clips of the final evaluation")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of local Ray (default 2)")
    parser.add_argument("--ray-first", action="store_true", help="run the sweep before the sequential trials")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        load_before = os.getloadavg()
        order = [("ray", on_ray), ("sequential", sequential)]
        if not args.ray_first:
            order.reverse()
        seconds = {}
        for name, run in order:
            seconds[name] = run(args, root / name)
            print(f"{name}: {args.trials} trials in {seconds[name]:.1f} s", flush=True)
        load_after = os.getloadavg()
        ratio = seconds["sequential"] / seconds["ray"]
        print(f"\n| trials | env steps each | sequential s | Ray Tune s (start-up included) | speed-up | load avg "
              f"before / after |\n|---:|---:|---:|---:|---:|---|\n| {args.trials} | {args.timesteps:,} | "
              f"{seconds['sequential']:.1f} | {seconds['ray']:.1f} | {ratio:.2f}x | "
              f"{load_before[0]:.1f} / {load_after[0]:.1f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
