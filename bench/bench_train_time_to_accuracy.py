"""Time to accuracy on the default synthetic benchmark: wall time until the test accuracy of ``reinforce`` and
``lstm_ppo`` reaches 90 % of what the ``oracle`` baseline (glimpses on the ground-truth core) reaches.

    python bench/bench_train_time_to_accuracy.py                      # default SyntheticGlimpse-v0
    python bench/bench_train_time_to_accuracy.py --limit-minutes 10 --threads 1

Every run goes through ``train_agent.py`` (its shipped hyperparameters) in a subprocess that evaluates on the
whole test subset every ``--eval-every`` env steps. The oracle trains to the end; the two agents are stopped
with Ctrl-C (SIGINT: checkpoint, clean exit) as soon as an evaluation reaches the target or the time limit
passes. Reported: training wall time (evaluations excluded) and wall time (included) at the first
evaluation that reached the target. This is a benchmark, not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
from pathlib import Path

from _common import ROOT, TRAIN

ENV = "SyntheticGlimpse-v0"


def evals(run: Path) -> list[dict]:
    path = run / "eval.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train(algo: str, logdir: Path, args: argparse.Namespace, target: float | None) -> tuple[Path, dict | None]:
    """Run train_agent.py; with a target, stop at the first evaluation that reaches it (or at the limit)."""
    run = logdir / f"{ENV}__{algo}__{args.seed}__tta"
    cmd = [*TRAIN, "--algo", algo, "--seed", str(args.seed),
           "--logdir", str(logdir), "--run-name", run.name, "--eval-every", str(args.eval_every), "--no-progress"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if target is not None:
        cmd += ["--total-timesteps", str(10**12), "--checkpoint-every", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start, hit = time.monotonic(), None
    while proc.poll() is None:
        time.sleep(1.0)
        if target is None:
            continue
        hit = next((e for e in evals(run) if e["accuracy"] >= target), None)
        if hit is not None or time.monotonic() - start > 60 * args.limit_minutes:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate()
    if proc.returncode not in (0, 130):
        raise RuntimeError(f"{algo} failed:\n{err[-2000:]}")
    if target is not None and hit is None:
        hit = next((e for e in evals(run) if e["accuracy"] >= target), None)
    return run, hit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logdir", type=Path, default=Path("runs/time_to_accuracy"))
    p.add_argument("--algos", nargs="+", default=["reinforce", "lstm_ppo"])
    p.add_argument("--eval-every", type=int, default=100_000)
    p.add_argument("--limit-minutes", type=float, default=10.0, help="give up after this long")
    p.add_argument("--fraction", type=float, default=0.9, help="target = fraction x oracle accuracy")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)

    oracle_run, _ = train("oracle", args.logdir, args, None)
    oracle = json.loads((oracle_run / "result.json").read_text())["accuracy"]
    target = args.fraction * oracle
    print(f"oracle test accuracy {oracle:.4f} -> target {target:.4f}", flush=True)
    rows = []
    for algo in args.algos:
        run, hit = train(algo, args.logdir, args, target)
        last = evals(run)[-1] if evals(run) else {}
        rows.append((algo, hit))
        status = "not reached" if hit is None else f"{hit['train_time_s']:.0f} s training"
        print(f"  {algo}: {status} (last eval: {last.get('accuracy', float('nan')):.4f} at step {last.get('step')})",
              flush=True)
    print("\n| algorithm | target accuracy | env steps | training time | wall time (with evaluations) |"
          "\n|---|---:|---:|---:|---:|")
    for algo, hit in rows:
        if hit is None:
            print(f"| `{algo}` | {target:.3f} | not reached in {args.limit_minutes:g} min (best "
                  f"{max(e['accuracy'] for e in evals(args.logdir / f'{ENV}__{algo}__{args.seed}__tta')):.3f}) | | |")
        else:
            print(f"| `{algo}` | {target:.3f} | {hit['step']:,} | {hit['train_time_s'] / 60:.1f} min | "
                  f"{hit['wall_time_s'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
