"""Every algorithm on every rung of the synthetic difficulty ladder (envs/ladder.py): one table, one figure.

    python bench/bench_ladder.py                                   # train all (resumable), evaluate, report
    python bench/bench_ladder.py --rungs SyntheticGlimpse-Easy-v0  # one column
    python bench/bench_ladder.py --skip-train                      # only (re)build the table and figure

Trains each of ``--algos`` on each of ``--rungs`` with ``train_agent.py`` (shipped hyperparameters, seed 0,
the env's default ``observation_mode=cube``) for the same budget on every rung, ``--timesteps`` env steps
(default 200,000: the easy rung's target budget), ``--jobs`` runs at a time with one torch thread each. A
finished run (its ``result.json`` exists) is kept; an interrupted one is resumed. Then ``evaluate.py
--compare`` scores every run on all test clips of its rung (evaluate.py's metrics, leaderboard grouped by
env id) and this script prints one table - rows algorithms, columns rungs, test accuracy with the rung's
chance beside it - and writes ``ladder.md``, ``ladder.json`` and ``ladder.png`` (a grouped bar chart)
into ``--out``. It reports the ladder's
targets: the easy rung >= 80 % for ``ppo``, ``a2c`` and ``recurrent_ppo``, and every rung up harder for every
algorithm. Harder is measured as skill above chance, ``(accuracy - chance) / (1 - chance)`` (raw accuracies
would fall with chance alone), averaged over the run's ``--evaluations`` evenly spaced test evaluations: the
area under its learning curve, which falls both when a rung ends lower and when it takes more steps to get
there (two rungs an agent ends at 100 % on still differ in how fast it gets there). An algorithm at chance on
a rung cannot do worse on the next; the bench says so instead of calling such a pair ordered. Figures are
printed, not asserted (this is a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import ROOT, TRAIN

sys.path.insert(0, str(ROOT))

from envs.ladder import LADDER, rung_config

#: the learners the ladder is for: ours and the Stable-Baselines3 ones
DEFAULT_ALGOS = ("reinforce", "lstm_ppo", "ppo", "a2c", "recurrent_ppo")
#: the easy-rung target: these reach it from the reward alone within the default budget
EASY_TARGET, EASY_ALGOS = 0.8, ("ppo", "a2c", "recurrent_ppo")


def folder_name(rung: str, algo: str, seed: int) -> str:
    return f"{rung}__{algo}__{seed}"


def rung_label(rung: str) -> str:
    """``SyntheticGlimpse-Easy-v0`` -> ``Easy``; the top rung ``SyntheticGlimpse-v0`` -> ``v0 (paper scale)``."""
    parts = rung.split("-")
    return parts[1] if len(parts) == 3 else f"{parts[-1]} (paper scale)"


def chance(rung: str) -> float:
    return 1.0 / rung_config(rung).num_classes


def train(rung: str, algo: str, args: argparse.Namespace) -> tuple[str, float, int]:
    """Train (or resume) one run; returns (run name, seconds, exit status)."""
    name = folder_name(rung, algo, args.seed)
    folder = args.out / name
    if (folder / "result.json").is_file():
        return name, 0.0, 0
    cmd = [*TRAIN, "--no-progress", "--threads", str(args.threads),
           "--total-timesteps", str(args.timesteps), "--eval-every", str(max(args.timesteps // args.evaluations, 1))]
    if (folder / "config.json").is_file():
        cmd += ["--resume", str(folder)]
    else:
        cmd += ["--algo", algo, "--env", rung, "--seed", str(args.seed), "--logdir", str(args.out), "--run-name", name,
                "--eval-clips", str(args.eval_clips)]
    start = time.perf_counter()
    with open(args.out / f"{name}.log", "a") as log:
        status = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    return name, time.perf_counter() - start, status


def ladder_cells(rows: list[dict[str, Any]], algos: list[str], rungs: list[str], seed: int) -> dict[str, dict]:
    """algo -> rung -> the leaderboard row of that run (missing where it was not trained or failed)."""
    by_run = {r["run"]: r for r in rows if r.get("status") == "ok"}
    return {a: {g: by_run[folder_name(g, a, seed)] for g in rungs if folder_name(g, a, seed) in by_run} for a in algos}


def skill(accuracy: float, rung: str) -> float:
    """Accuracy above chance as a share of the room above chance: 1 = perfect, 0 = chance."""
    return (accuracy - chance(rung)) / (1 - chance(rung))


def learning_curve_skill(folder: Path, rung: str) -> float | None:
    """Mean skill over the run's training-time test evaluations (``eval.jsonl``): the area under its curve."""
    from agents.training.runs import RunFolder

    evals = RunFolder(folder).read_evals() if folder.is_dir() else []
    return sum(skill(e["accuracy"], rung) for e in evals) / len(evals) if evals else None


#: Below this learning-curve skill a run counts as at chance (about 5 lucky clips in each of the default
#: evaluations' 256 test clips).
AT_CHANCE = 0.02


def table_markdown(cells: dict[str, dict], curves: dict[str, dict], rungs: list[str], budget: int,
                   evaluations: int) -> str:
    """Rows algorithms, columns rungs: test accuracy (chance beside it), then the learning-curve skill."""
    head = "| algorithm | " + " | ".join(f"`{g}`" for g in rungs) + " |\n|---|" + "---:|" * len(rungs)
    lines = [f"Test accuracy on all test clips of each rung (chance in brackets), {budget:,} env steps per run.", "",
             head]
    for algo, row in cells.items():
        values = [f"{row[g]['accuracy']:.1%} ({chance(g):.0%})" if g in row else "not run" for g in rungs]
        lines.append(f"| `{algo}` | " + " | ".join(values) + " |")
    lines += ["", f"Skill above chance averaged over the {evaluations} training-time evaluations (area under the "
              "learning curve; 1 = perfect from the first evaluation, 0 = chance throughout).", "", head]
    for algo, row in curves.items():
        values = [f"{row[g]:.3f}" if row.get(g) is not None else "not run" for g in rungs]
        lines.append(f"| `{algo}` | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def target_checks(cells: dict[str, dict], curves: dict[str, dict], rungs: list[str]) -> list[str]:
    """The ladder's targets, measured: the easy rung, and every algorithm doing worse rung by rung."""
    lines = []
    easy = next(iter(LADDER))
    for algo in EASY_ALGOS:
        if easy in cells.get(algo, {}):
            acc = cells[algo][easy]["accuracy"]
            lines.append(f"{algo} on {easy}: {acc:.1%} ({'meets' if acc >= EASY_TARGET else 'misses'} "
                         f">= {EASY_TARGET:.0%})")
    for algo, row in curves.items():
        areas = [row.get(g) for g in rungs]
        if None in areas or len(areas) < 2:
            continue
        pairs = list(itertools.pairwise(areas))
        floor = [b for a, b in pairs if a < AT_CHANCE]  # at chance already on the rung below
        ordered = all(a > b for a, b in pairs if a >= AT_CHANCE)
        verdict = "harder every rung up" if ordered else "NOT strictly harder every rung up"
        if ordered and floor:
            verdict += f" (from the first rung it is at chance on, it stays there: {len(floor)} pair(s) cannot order)"
        lines.append(f"{algo}: learning-curve skill by rung {', '.join(f'{a:.3f}' for a in areas)} -> {verdict}")
    return lines


def write_figure(cells: dict[str, dict], rungs: list[str], path: Path) -> Path:
    """Grouped bars: one group per rung, one bar per algorithm, the rung's chance as a dashed line."""
    labels = [rung_label(g) for g in rungs]
    algos = list(cells)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(algos), 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, algo in enumerate(algos):
        xs = [j + (i - (len(algos) - 1) / 2) * width for j, g in enumerate(rungs) if g in cells[algo]]
        ys = [100 * cells[algo][g]["accuracy"] for g in rungs if g in cells[algo]]
        ax.bar(xs, ys, width, label=algo)
    for j, g in enumerate(rungs):
        ax.hlines(100 * chance(g), j - 0.45, j + 0.45, colors="black", linestyles="dashed",
                  label="chance" if j == 0 else None)
    ax.set_xticks(range(len(rungs)), [f"{lab}\n({rung_config(g).num_classes} classes)"
                                      for lab, g in zip(labels, rungs, strict=True)])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("SyntheticGlimpse ladder: test accuracy per rung")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ladder", help="folder of the runs")
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_ALGOS), help="algorithms to train")
    parser.add_argument("--rungs", nargs="+", default=list(LADDER), choices=list(LADDER), metavar="ID",
                        help=f"ladder rungs (default: all of {', '.join(LADDER)})")
    parser.add_argument("--timesteps", type=int, default=200_000, help="env steps per run, the same on every rung")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--eval-clips", type=int, default=256, help="test clips of the training-time evaluations")
    parser.add_argument("--evaluations", type=int, default=8,
                        help="training-time evaluations per run, evenly spaced (their mean: learning-curve skill)")
    parser.add_argument("--skip-train", action="store_true", help="only build the table and the figure")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # rung by rung, easiest first (a cut-short run still fills whole columns); within a rung the slowest
    # learner (recurrent_ppo) starts first so the other runs fill the second worker meanwhile
    todo = sorted(((g, a) for g in args.rungs for a in args.algos),
                  key=lambda e: (list(LADDER).index(e[0]), e[1] != "recurrent_ppo"))
    start = time.perf_counter()
    if not args.skip_train:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for name, seconds, status in pool.map(lambda e: train(*e, args), todo):
                print(f"{name}: {'ok' if status == 0 else f'FAILED (exit {status})'} in {seconds:.0f} s", flush=True)
    trained = time.perf_counter()
    from agents.evaluation import cli as evaluate_cli

    folders = [str(f) for f in (args.out / folder_name(g, a, args.seed) for g, a in todo) if f.is_dir()]
    if not folders:
        print(f"no runs in {args.out}", file=sys.stderr)
        return 1
    evaluate_cli.main(["--compare", *folders, "--out", str(args.out), "--no-progress", "--no-video"])
    rows = json.loads((args.out / "leaderboard.json").read_text())
    cells = ladder_cells(rows, args.algos, args.rungs, args.seed)
    curves = {a: {g: learning_curve_skill(args.out / folder_name(g, a, args.seed), g) for g in args.rungs}
              for a in args.algos}
    table = table_markdown(cells, curves, args.rungs, args.timesteps, args.evaluations)
    checks = target_checks(cells, curves, args.rungs)
    total = time.perf_counter() - start
    summary = (f"\nwall time: {total / 60:.1f} min ({(trained - start) / 60:.1f} training, "
               f"{(total - (trained - start)) / 60:.1f} evaluation), {args.jobs} runs at a time")
    (args.out / "ladder.md").write_text(table + "\n" + "\n".join(checks) + "\n" + summary + "\n")
    (args.out / "ladder.json").write_text(json.dumps(
        {"timesteps": args.timesteps, "rungs": args.rungs, "chance": {g: chance(g) for g in args.rungs},
         "accuracy": {a: {g: r["accuracy"] for g, r in row.items()} for a, row in cells.items()},
         "learning_curve_skill": curves,
         "wall_time_s": total}, indent=1))
    figure = write_figure(cells, args.rungs, args.out / "ladder.png")
    print(table)
    print("\n".join(checks))
    print(summary)
    print(f"table: {args.out / 'ladder.md'}; figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
