"""Agents on real CNN features: every agent of Table I on stores of the rendered action-video benchmark.

    python -m feature_extractors render --variant moving --out data/rendered-moving
    python -m feature_extractors hmdb51 --videos data/rendered-moving/videos --splits data/rendered-moving/splits \\
        --actors data/rendered-moving/actors.json --weights random --out data/store-moving
    python bench/bench_rendered.py data/store-moving data/store-marked --logdir runs/rendered

Each row is one ``train_agent.py`` run on ``HMDB51Glimpse-v0`` (split 1) with the algorithm's shipped
hyperparameters for store envs and ``periphery_motion=True`` (the periphery with each cell's change since the
previous frame), evaluated on the whole test subset at the end. Beside the agents, the table gives the
linear probes of the store (``agents.evaluation.probes``): the oracle-cell probe is the reference, and the
target is that the best of ``reinforce`` / ``lstm_ppo`` reaches 80 % of it and beats ``mean_pool`` and
``soft_attention``. Rows whose run folder already holds a ``result.json`` are not retrained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import ROOT, train_run

sys.path.insert(0, str(ROOT))

from agents.evaluation.probes import probe_store

ENV = "HMDB51Glimpse-v0"
#: (row label, algorithm, env kwargs)
ROWS: list[tuple[str, str, list[str]]] = [
    ("REINFORCE, glimpse + periphery", "reinforce", ["observation_mode=glimpse"]),
    ("REINFORCE, cube", "reinforce", ["observation_mode=cube"]),
    ("hybrid lstm_ppo, glimpse + periphery", "lstm_ppo", ["observation_mode=glimpse"]),
    ("soft attention (Sharma et al. 2015)", "soft_attention", ["observation_mode=cube"]),
    ("no attention: mean of all cells", "mean_pool", ["observation_mode=cube"]),
    ("oracle glimpses (actor box)", "oracle", ["observation_mode=glimpse"]),
]
LEARNED = ("reinforce", "lstm_ppo")


def run_row(store: Path, algo: str, env_kwargs: list[str], args: argparse.Namespace) -> tuple[Path, float]:
    """Train (unless done) and return the run folder and the wall time in minutes (0 when reused)."""
    mode = env_kwargs[0].split("=")[1]
    name = f"{store.name}__{algo}__{mode}__{args.seed}"
    run = args.logdir / name
    if (run / "result.json").is_file():
        return run, 0.0
    argv = ["--env", ENV, "--algo", algo, "--seed", str(args.seed), "--logdir", str(args.logdir), "--run-name",
            name, "--no-progress", "--threads", str(args.threads), "--env-kwargs", f"data_root={store}",
            "periphery_motion=True", *env_kwargs]
    if args.total_timesteps:
        argv += ["--total-timesteps", str(args.total_timesteps)]
    minutes = train_run(argv, f"{algo} {env_kwargs} on {store}") / 60
    print(f"  {store.name} {algo} {mode}: {minutes:.1f} min", flush=True)
    return run, minutes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", type=Path, metavar="STORE", help="stores extracted with --actors")
    p.add_argument("--logdir", type=Path, default=Path("runs/rendered"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-timesteps", type=int, default=None, help="env steps per run (default: shipped)")
    args = p.parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)
    for store in args.stores:
        probes = probe_store(store)
        reference = probes.accuracy["oracle"] or 0.0
        rows = []
        for label, algo, env_kwargs in ROWS:
            run, minutes = run_row(store, algo, env_kwargs, args)
            rows.append((label, algo, json.loads((run / "result.json").read_text()), minutes))
        print(f"\n{store} (chance {probes.chance:.1%}; probes: mean of cells {probes.accuracy['mean']:.1%}, oracle "
              f"cells {reference:.1%}, random cell {probes.accuracy['random']:.1%})\n")
        print("| model | `--algo` | test accuracy | of the oracle-cell probe | focus accuracy | env steps | minutes |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for label, algo, r, minutes in rows:
            focus = "n/a" if algo in ("mean_pool", "soft_attention") else f"{r['focus_accuracy']:.1%}"
            share = f"{r['accuracy'] / reference:.0%}" if reference else "-"
            spent = f"{minutes:.1f}" if minutes else "-"
            steps = f"{r['num_timesteps']:,}"
            print(f"| {label} | `{algo}` | {r['accuracy']:.1%} | {share} | {focus} | {steps} | {spent} |")
        best = max(r["accuracy"] for _, algo, r, _ in rows if algo in LEARNED)
        baselines = max(r["accuracy"] for _, algo, r, _ in rows if algo in ("mean_pool", "soft_attention"))
        verdict = "met" if best >= 0.8 * reference and best > baselines else "NOT met"
        print(f"\ntarget (best learned agent >= 80 % of the oracle-cell probe and above both baselines): {verdict} "
              f"({best:.1%} against {0.8 * reference:.1%} and {baselines:.1%})")


if __name__ == "__main__":
    main()
