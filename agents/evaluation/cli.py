"""Score, compare and show trained attention policies.

    python evaluate.py runs/SyntheticGlimpse-v0__reinforce__0__<time>       # one run (or several)
    python evaluate.py --compare runs/*                                      # leaderboard of many runs
    python evaluate.py runs/hmdb_s1 runs/hmdb_s2 runs/hmdb_s3 --split 1 2 3  # HMDB-51: each split + mean

A run is a folder written by ``train_agent.py`` (any algorithm). Its policy acts deterministically on every
clip of the chosen subset (default: test). Written into the run folder: ``eval.json``, ``eval.md`` (a
Markdown report), ``evaluation/`` (confusion matrix, attention maps as PNG and GIF) and TensorBoard
summaries in the run's log (``eval/...`` scalars, images, per-class accuracy, an hparams session).
``--compare`` also writes ``leaderboard.md``, ``leaderboard.json`` and ``accuracy_vs_flops.png`` next to the
runs (``--out``), and reuses each run's ``eval.json`` when it was made with the same settings. The leaderboard
is grouped by env id (one ranked table per env, e.g. per rung of the synthetic ladder, easiest first).
Torch uses ``--threads`` CPU threads (default 1, as ``train_agent.py``): the latency in the reports is measured
with them and says so. A run that is still training (its folder's write lock is held) is evaluated from its
newest checkpoint and marked "still training" in ``eval.md`` and the leaderboard.
This module is the command line of ``evaluate.py``, ``glimpse-evaluate`` and ``python -m agents.evaluation.cli``;
how a policy is scored lives in the rest of ``agents/evaluation/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python evaluate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (runs/<env>__<algo>__<seed>__<time>)")
    parser.add_argument("--compare", action="store_true",
                        help="evaluate (or reuse the eval.json of) every run and write one leaderboard")
    parser.add_argument("--subset", default="test", help="subset to evaluate on (default: test)")
    parser.add_argument("--split", type=int, nargs="+", choices=(1, 2, 3),
                        help="HMDB-51: one run per listed split; reports each split and the mean")
    parser.add_argument("--episodes", type=int, default=None,
                        help="evaluate N clips drawn with --seed (default: every clip of the subset)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the clip draw, env resets and policy draws, in [0, 2**32) (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device of the policy (cpu, cuda, ...)")
    parser.add_argument("--n-envs", type=int, default=64, help="clips evaluated in one lockstep batch")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1; 0: torch's default, one per core). The latency is "
                             "measured with them; more threads than free cores inflate it")
    parser.add_argument("--no-video", action="store_true", help="skip frame rendering (no attention maps)")
    parser.add_argument("--maps", type=int, default=4, help="attention maps per run (default 4)")
    parser.add_argument("--data-root", default=None, help="feature store to evaluate on instead of the run's")
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="evaluate this checkpoint of the run instead of its final model")
    parser.add_argument("--activitynet-gt", default=None,
                        help="official ActivityNet annotation JSON to score mAP / Hit@3 against")
    parser.add_argument("--export-activitynet", default=None, metavar="FILE",
                        help="write the predictions in the official ActivityNet results JSON format")
    parser.add_argument("--out", default=None,
                        help="folder of the leaderboard / split summary (default: the runs' parent folder)")
    parser.add_argument("--reevaluate", action="store_true", help="--compare: ignore stored eval.json files")
    parser.add_argument("--sort-by", default="accuracy", choices=("accuracy", "mean_ap", "focus_accuracy"),
                        help="leaderboard order (default accuracy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate as the command line ``argv`` says (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    limits = (("--episodes", args.episodes, 1), ("--n-envs", args.n_envs, 1), ("--maps", args.maps, 0),
              ("--threads", args.threads, 0))
    for flag, value, least in limits:
        if value is not None and value < least:
            parser.error(f"{flag} must be >= {least}, got {value}")
    from agents.common.checks import seed_problem

    if (problem := seed_problem("--seed", args.seed)) is not None:
        parser.error(problem)
    if args.export_activitynet and (args.compare or args.split or len(args.runs) > 1):
        parser.error("--export-activitynet writes the predictions of a single run; pass one run folder")
    from agents.common.devices import DeviceError, check_device, set_threads

    try:
        check_device(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
    set_threads(args.threads)
    from agents.evaluation.compare import compare, evaluate_splits, leaderboard_markdown
    from agents.evaluation.report import Options, evaluate_run, summary_line
    from agents.evaluation.run import EVAL_MD, RunError, open_run

    opts = Options(subset=args.subset, episodes=args.episodes, seed=args.seed, device=args.device,
                   n_envs=args.n_envs, video=not args.no_video, maps=args.maps, data_root=args.data_root,
                   checkpoint=args.checkpoint,
                   activitynet_gt=args.activitynet_gt, export_activitynet=args.export_activitynet,
                   progress=not args.no_progress)
    out = Path(args.out) if args.out else None
    try:
        if args.compare:
            rows = compare(args.runs, opts, out, args.reevaluate, args.sort_by)
            print(leaderboard_markdown(rows, args.sort_by))
            return 0 if any(r["status"] == "ok" for r in rows) else 1
        if args.split:
            print(evaluate_splits(args.runs, args.split, opts, out)["markdown"])
            return 0
        for path in args.runs:
            report = evaluate_run(open_run(path), opts)
            print(f"{path}: {summary_line(report)}")
            print(f"  report: {Path(path) / EVAL_MD}")
        return 0
    except RunError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
