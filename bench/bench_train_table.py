"""The paper's Table I layout on the default synthetic benchmark: baseline soft attention, the REINFORCE agent
limited to 5 glimpses, the REINFORCE agent with unlimited glimpses, plus our recurrent actor-critic (the hybrid
``lstm_ppo``) and the no-attention and fixed-glimpse baselines (mean pooling, random glimpses, oracle glimpses).

    python bench/bench_train_table.py                           # default SyntheticGlimpse-v0
    python bench/bench_train_table.py --threads 1 --seed 0 --logdir runs/table1

Each row is one ``train_agent.py`` run with the algorithm's shipped hyperparameters (the env kwargs of the row
added), evaluated on the whole test subset at the end; the table reads each run's ``result.json``. Rows
whose run folder already holds a ``result.json`` are not retrained (delete the folder to redo one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import train_run

ENV = "SyntheticGlimpse-v0"
#: (row label, algorithm, env kwargs, other train_agent.py arguments). The 5-glimpse agent collects 192
#: episodes per update: the same 960 env steps per update as the unlimited one with its 32 episodes of 30.
ROWS: list[tuple[str, str, list[str], list[str]]] = [
    ("baseline soft attention (Sharma et al. 2015)", "soft_attention", [], []),
    ("REINFORCE attention, limited to 5 glimpses", "reinforce", ["glimpse_budget=5"], ["--n-envs", "192"]),
    ("REINFORCE attention, unlimited glimpses", "reinforce", [], []),
    ("recurrent actor-critic: PPO glimpses, cross-entropy class head", "lstm_ppo", [], []),
    ("no attention: mean of all cells", "mean_pool", [], []),
    ("random glimpses", "random", [], []),
    ("oracle glimpses (ground-truth core)", "oracle", [], []),
]


def run_row(algo: str, env_kwargs: list[str], extra: list[str], args: argparse.Namespace) -> Path:
    name = f"{ENV}__{algo}{'__' + '_'.join(env_kwargs) if env_kwargs else ''}__{args.seed}".replace("=", "")
    run = args.logdir / name
    if (run / "result.json").is_file():
        return run
    argv = ["--algo", algo, "--seed", str(args.seed), "--logdir", str(args.logdir), "--run-name", name,
            "--no-progress"]
    if env_kwargs:
        argv += ["--env-kwargs", *env_kwargs]
    argv += extra
    if args.threads:
        argv += ["--threads", str(args.threads)]
    seconds = train_run(argv, f"{algo} {env_kwargs}")
    print(f"  {algo} {' '.join(env_kwargs)}: {seconds:.0f} s", flush=True)
    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logdir", type=Path, default=Path("runs/table1"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)
    results = []
    for label, algo, env_kwargs, extra in ROWS:
        run = run_row(algo, env_kwargs, extra, args)
        results.append((label, algo, json.loads((run / "result.json").read_text())))
    print("\n| model | `--algo` | test accuracy | focus accuracy | glimpses per video | env steps |")
    print("|---|---|---:|---:|---:|---:|")
    for label, algo, r in results:
        focus = "n/a" if algo == "mean_pool" else f"{100 * r['focus_accuracy']:.1f} %"
        glimpses = "49 cells x 30" if algo in ("mean_pool", "soft_attention") else f"{r['glimpses_per_video']:.0f}"
        print(f"| {label} | `{algo}` | {100 * r['accuracy']:.1f} % | {focus} | {glimpses} | {r['num_timesteps']:,} |")


if __name__ == "__main__":
    main()
