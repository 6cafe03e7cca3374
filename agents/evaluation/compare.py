"""Many runs at once: the leaderboard of ``--compare`` (with the accuracy-vs-FLOPs plot) and the HMDB-51
per-split summary of ``--split``."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.evaluation.episodes import AGGREGATION
from agents.evaluation.report import EVAL_FORMAT, METRIC_ROWS, Options, evaluate_run, fmt, json_safe, training_pid
from agents.evaluation.run import EVAL_JSON, Run, RunError, model_file, open_run

LEADERBOARD_COLUMNS = (
    ("run", "run", ""), ("algo", "algo", ""), ("obs", "obs", ""), ("accuracy", "accuracy", "pct"),
    ("top5_accuracy", "top-5", "pct"), ("mean_ap", "mAP", "pct"), ("focus_accuracy", "focus", "pct"),
    ("glimpses_per_clip", "glimpses/clip", ""), ("frames_watched_per_clip", "frames/clip", ""),
    ("cnn_flops_per_clip", "CNN FLOPs/clip", "flops"), ("cnn_share_of_full", "of full-frame CNN", "pct"),
    ("feature_values_read_per_clip", "values read/clip", "flops"),
    ("share_of_cube_read", "of the cube", "pct"), ("store_bytes_read_per_clip", "store bytes/clip", "bytes"),
    ("attention_flops_per_clip", "attention FLOPs/clip", "flops"),
    ("latency_ms_per_clip", "latency ms/clip", ""), ("steps_trained", "steps trained", "int"),
    ("wall_time_s", "wall time s", ""),
)


def reusable(run: Run, opts: Options) -> dict[str, Any] | None:
    """The run's eval.json if it was made with the same settings from the current model file."""
    path = run.path / EVAL_JSON
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    model = model_file(run, opts.checkpoint)
    same_model = model is None or (old.get("model") or {}).get("mtime") == model.stat().st_mtime
    # the latency was measured with the torch threads of its evaluation: reused only under the same count
    settings = {**opts.reuse_key(), "threads": torch.get_num_threads()}
    same = old.get("format") == EVAL_FORMAT and all(old.get("settings", {}).get(k) == v for k, v in settings.items())
    return old if same and same_model else None


def leaderboard_row(run_name: str, report: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    if report is None:
        return {"run": run_name, "status": f"failed: {error}"}
    classes = len(report.get("per_class") or []) or None
    return {"run": run_name, "env": report["env_id"], "chance": 1 / classes if classes else None,
            "algo": report["algo"],
            "obs": report.get("reads") or report["env_kwargs"].get("observation_mode", "cube"),
            **report["metrics"], **report["training"], "status": "ok"}


def env_order(rows: Sequence[dict[str, Any]]) -> list[str | None]:
    """The env ids of the rows: registered ids in registration order (the synthetic ladder easiest first),
    then any others by name; None (runs that failed before their env was known) last."""
    import envs

    known = list(envs.ENV_IDS)
    ids = {r.get("env") for r in rows}
    return sorted(ids, key=lambda e: (e is None, e not in known, known.index(e) if e in known else 0, e or ""))


def compare(paths: Sequence[str], opts: Options, out: Path | None, reevaluate: bool = False,
            sort_by: str = "accuracy") -> list[dict[str, Any]]:
    """Evaluate (or reuse) every run; write the leaderboard and the accuracy-vs-FLOPs plot; return the rows."""
    from tqdm import tqdm

    rows = []
    folders = [Path(p) for p in paths if not Path(p).is_file()]  # runs/* also matches the leaderboard files
    for folder in tqdm(folders, desc="runs", unit="run", disable=not opts.progress):
        try:
            run = open_run(folder)
            report = None if reevaluate else reusable(run, opts)
            if report is None:
                report = evaluate_run(run, opts)
            else:  # whether the run is still training is a fact of now, not of when eval.json was written
                report = {**report, "training": {**report["training"], "still_training": training_pid(run)}}
            rows.append(leaderboard_row(folder.name, report))
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, RunError):
                message = f"{type(exc).__name__}: {message}"
                traceback.print_exc(file=sys.stderr)
            print(f"evaluate: {folder}: {message}", file=sys.stderr)
            rows.append(leaderboard_row(folder.name, None, message))
    runs = list(zip(folders, rows, strict=True))  # before sorting: row i is folder i
    # grouped by env id (the leaderboard reads per env, e.g. per rung of the ladder), best first within each
    order = env_order(rows)
    rows.sort(key=lambda r: (order.index(r.get("env")), r["status"] != "ok", -(r.get(sort_by) or 0.0),
                             r.get("attention_flops_per_clip") or 0))
    out = out or _common_parent(folders)
    out.mkdir(parents=True, exist_ok=True)
    from agents.evaluation.statistics import leaderboard_section  # seeds of one setting -> mean, IQM, 95 % CI

    seed_section = leaderboard_section(runs, out, sort_by, opts.seed)
    (out / "leaderboard.md").write_text(leaderboard_markdown(rows, sort_by) + seed_section)
    if seed_section:
        print(seed_section)
    (out / "leaderboard.json").write_text(json.dumps(json_safe(rows), indent=1))
    write_accuracy_vs_flops(rows, out / "accuracy_vs_flops.png")
    return rows


def _common_parent(folders: Sequence[Path]) -> Path:
    if not folders:
        return Path(".")
    return Path(os.path.commonpath([str(f.resolve().parent) for f in folders]))


def leaderboard_markdown(rows: Sequence[dict[str, Any]], sort_by: str = "accuracy") -> str:
    """One table per env id (a single table when all runs share one env), ranked within each."""
    head = ["#"] + [label for _, label, _ in LEADERBOARD_COLUMNS] + ["status"]
    cnn_line = (" CNN FLOPs/clip: what the policy needs computed. On full-frame cells, the whole GoogLeNet per "
                "frame watched (one cell's receptive field covers most of the frame); on crop cells, per frame "
                "watched the glance plus one crop per cell looked at.")
    lines = [f"Leaderboard (sorted by {sort_by}; clip prediction = {AGGREGATION}).{cnn_line}"]
    order = env_order(rows)
    for env in order:
        group = [r for r in rows if r.get("env") == env]
        if len(order) > 1:
            chance = next((r["chance"] for r in group if r.get("chance")), None)
            lines += ["", f"### `{env}`" + (f" (chance {fmt(chance, 'pct')})" if chance else "") if env
                      else "### runs that could not be read"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, row in enumerate(group, 1):
            cells = [str(i)] + [fmt(row.get(key), kind) if row["status"] == "ok" or key == "run" else ""
                                for key, _, kind in LEADERBOARD_COLUMNS] + [_status(row)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _status(row: dict[str, Any]) -> str:
    pid = row.get("still_training")
    return row["status"] if pid is None else f"{row['status']}; still training (process {pid or 'unknown'})"


def write_accuracy_vs_flops(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Two scatter plots side by side: accuracy vs the CNN GFLOPs per clip the policy needs, with the Pareto
    front marked (the compute that matters: the attention models are a few thousandths of it), and accuracy vs
    the attention model's FLOPs per clip."""
    from agents.evaluation.images import Point, scatter_plot, write_png

    ok = [r for r in rows if r["status"] == "ok"]
    label = [f"{r['run']} ({r['algo']}, {r['obs']})" for r in ok]
    cnn = [Point((r.get("cnn_flops_per_clip") or 0.0) / 1e9, 100 * r["accuracy"], text, r["algo"])
           for r, text in zip(ok, label, strict=True)]
    attention = [Point(r.get("attention_flops_per_clip") or 0.0, 100 * r["accuracy"], text, r["algo"])
                 for r, text in zip(ok, label, strict=True)]
    size = (720, 520)
    left = scatter_plot(cnn, "CNN GFLOPs per clip", "accuracy (%)", "accuracy vs CNN compute (Pareto front dashed)",
                        y_range=(0.0, 100.0), size=size, front=True)
    right = scatter_plot(attention, "attention-model FLOPs per clip", "accuracy (%)",
                         "accuracy vs attention-model FLOPs", y_range=(0.0, 100.0), size=size)
    return write_png(path, np.hstack([left, right]))


# ---------------------------------------------------------------------------------------------- splits
def evaluate_splits(paths: Sequence[str], splits: Sequence[int], opts: Options, out: Path | None) -> dict[str, Any]:
    """One HMDB-51 run per official split: each split's scores and their mean (as the literature reports)."""
    runs = [open_run(p) for p in paths]
    by_split: dict[int, Run] = {}
    for run in runs:
        if run.env_id != "HMDB51Glimpse-v0":
            raise RunError(f"--split applies to HMDB51Glimpse-v0 runs; '{run.path}' is a {run.env_id} run.")
        split = int(run.env_kwargs.get("split", 1))
        if split not in splits:
            raise RunError(f"run '{run.path}' was trained on split {split}, which is not among --split "
                           f"{' '.join(map(str, splits))}.")
        if split in by_split:
            raise RunError(
                f"two runs for split {split}: '{by_split[split].path}' and '{run.path}'; pass one per split.")
        by_split[split] = run
    missing = [s for s in splits if s not in by_split]
    if missing:
        raise RunError(f"no run for split(s) {', '.join(map(str, missing))}: pass one run folder per split "
                       "(each trained with --env-kwargs split=<n>).")
    reports = {s: evaluate_run(by_split[s], opts) for s in splits}
    keys = [k for k, _, _ in METRIC_ROWS]
    mean = {k: float(np.mean([reports[s]["metrics"][k] for s in splits])) for k in keys
            if all(isinstance(reports[s]["metrics"].get(k), int | float) for s in splits)}
    summary = {"splits": {str(s): {"run": reports[s]["run"], "metrics": reports[s]["metrics"]} for s in splits},
               "mean": mean}
    lines = ["| metric | " + " | ".join(f"split {s}" for s in splits) + " | mean |",
             "|---|" + "---:|" * (len(splits) + 1)]
    for key, label, kind in METRIC_ROWS:
        if key in mean:
            values = [fmt(reports[s]["metrics"][key], kind) for s in splits]
            lines.append(f"| {label} | " + " | ".join(values) + f" | {fmt(mean[key], kind)} |")
    out = out or _common_parent([r.path for r in runs])
    out.mkdir(parents=True, exist_ok=True)
    (out / "splits.json").write_text(json.dumps(json_safe(summary), indent=1))
    (out / "splits.md").write_text("HMDB-51, one run per official split; the mean is what the literature reports.\n\n"
                                   + "\n".join(lines) + "\n")
    summary["markdown"] = "\n".join(lines)
    return summary


