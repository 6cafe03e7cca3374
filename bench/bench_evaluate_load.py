"""evaluate.py on a shared machine: wall time and reported latency with one core busy, against the same
machine quiet, in one run.

    python bench/bench_evaluate_load.py runs/<run> [--rounds 2] [--threads 1]

Each round runs ``evaluate.py RUN --reevaluate --no-video`` twice: once with nothing else running, once with
a busy loop holding one core (another process, as a second user's job would). It prints both wall times, both
latencies that ``eval.md`` reports, and their ratios (busy / quiet; the target is at most 1.5 for both),
taking each condition's best round.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import time
from pathlib import Path

from _common import EVALUATE, ROOT


def _spin() -> None:
    while True:
        pass


def evaluate(run: Path, threads: int) -> tuple[float, float]:
    """(wall seconds, latency in ms per clip) of one ``evaluate.py`` of ``run``."""
    cmd = [*EVALUATE, str(run), "--reevaluate", "--no-video", "--no-progress",
           "--threads", str(threads)]
    tic = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - tic
    latency = json.loads((run / "eval.json").read_text())["metrics"]["latency_ms_per_clip"]
    return wall, float(latency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="evaluate.py --threads (default 1)")
    args = parser.parse_args()
    quiet, busy = [], []
    for _ in range(args.rounds):
        quiet.append(evaluate(args.run, args.threads))
        spinner = multiprocessing.Process(target=_spin, daemon=True)
        spinner.start()
        try:
            busy.append(evaluate(args.run, args.threads))
        finally:
            spinner.terminate()
            spinner.join()
    (q_wall, q_lat), (b_wall, b_lat) = min(quiet), min(busy)
    print(f"threads {args.threads}; best of {args.rounds} rounds")
    print("| condition | wall time (s) | latency (ms per clip) |\n|---|---:|---:|")
    print(f"| quiet | {q_wall:.1f} | {q_lat:.1f} |\n| one core busy | {b_wall:.1f} | {b_lat:.1f} |")
    print(f"| ratio busy / quiet | {b_wall / q_wall:.2f} | {b_lat / q_lat:.2f} |")


if __name__ == "__main__":
    main()
