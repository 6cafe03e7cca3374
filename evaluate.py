"""Score, compare and show trained attention policies.

    python evaluate.py runs/SyntheticGlimpse-v0__reinforce__0__<time>       # one run (or several)
    python evaluate.py --compare runs/*                                      # leaderboard of many runs
    python evaluate.py runs/hmdb_s1 runs/hmdb_s2 runs/hmdb_s3 --split 1 2 3  # HMDB-51: each split + mean

A run is a folder written by ``train_agent.py`` (any algorithm). Its policy acts deterministically on every
clip of the chosen subset (default: test). Written into the run folder: ``eval.json``, ``eval.md`` (a
Markdown report), ``evaluation/`` (confusion matrix, attention maps as PNG and GIF) and TensorBoard
summaries in the run's log (``eval/...`` scalars, images, per-class accuracy, an hparams session).
``--compare`` also writes ``leaderboard.md``, ``leaderboard.json`` and ``accuracy_vs_flops.png`` next to the
runs (``--out``), and reuses each run's ``eval.json`` when it was made with the same settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

EVAL_FORMAT = 1
EVAL_JSON, EVAL_MD, IMAGES_DIR = "eval.json", "eval.md", "evaluation"
CONFIG_FILE = "config.json"
AGGREGATION = "argmax of the per-step softmax class probabilities summed over the clip's steps"
#: Settings that must match for a stored eval.json to be reused by --compare.
REUSE_KEYS = ("subset", "episodes", "seed", "data_root", "activitynet_gt", "checkpoint")


class RunError(Exception):
    """A run that cannot be evaluated; the message names the problem and the fix."""


# ============================================================================================== run folders
@dataclass
class Run:
    """A training run folder and what ``config.json`` says about it."""

    path: Path
    config: dict[str, Any]
    env_id: str
    env_kwargs: dict[str, Any]
    algo: str
    seed: int | None
    hyperparams: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def observation_mode(self) -> str:
        return str(self.env_kwargs.get("observation_mode", "cube"))


def open_run(path: str | Path) -> Run:
    """Read a run folder; ``RunError`` when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"'{path}' is not a run folder (not a directory). Pass runs/<env>__<algo>__<seed>__<time>/.")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise RunError(
            f"'{path}' is not a run folder: it has no {CONFIG_FILE}. Runs are written by "
            "`python train_agent.py --algo <name> --env <id>` into runs/<env>__<algo>__<seed>__<time>/."
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"'{config_path}' is not valid JSON ({exc}); the run folder is damaged.") from None
    missing = [k for k in ("env_id", "algo") if k not in config]
    if missing:
        raise RunError(f"'{config_path}' lacks {', '.join(missing)}: not a config written by train_agent.py.")
    return Run(
        path=path,
        config=config,
        env_id=str(config["env_id"]),
        env_kwargs=dict(config.get("env_kwargs") or {}),
        algo=str(config["algo"]),
        seed=config.get("seed"),
        hyperparams=dict(config.get("hyperparams") or {}),
    )


def model_file(run: Run, checkpoint: str | None = None) -> Path | None:
    """The file the policy is loaded from: ``checkpoint``, else the final model named in config.json, else the
    latest checkpoint (what :func:`agents.load_policy` reads), or None."""
    from agents.runs import RunFolder

    if checkpoint is not None:
        return Path(checkpoint)
    folder = RunFolder(run.path)
    final = folder.model_path(run.config)
    return final if final.is_file() else folder.latest_checkpoint()


def load_run_policy(run: Run, device: str, seed: int, checkpoint: str | None = None) -> Any:
    """The run's trained :class:`agents.policy.Policy`; ``RunError`` for a missing or corrupt model."""
    import torch

    from agents import load_policy
    from agents.runs import RunFolderError

    try:
        policy = load_policy(run.path, device=device, checkpoint=checkpoint)
    except (RunFolderError, FileNotFoundError) as exc:
        raise RunError(
            f"run '{run.path}' has no trained model to load ({exc}). Training may still be running or was "
            "stopped before its first checkpoint: wait for it, or resume it with `python train_agent.py --resume "
            f"{run.path}`."
        ) from None
    except Exception as exc:  # any unpickling / zip / key error means a damaged file
        where = model_file(run, checkpoint)
        raise RunError(
            f"could not load the model of run '{run.path}' from '{where}': {type(exc).__name__}: {exc}. The file is "
            "corrupt or incomplete (an interrupted save?): retrain the run, or evaluate one of its checkpoints "
            "with --checkpoint <file>."
        ) from None
    generator = getattr(policy, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)  # draws of random / oracle glimpses follow --seed
    return policy


def steps_and_wall_time(run: Run) -> tuple[int | None, float | None]:
    """Env steps trained and training wall time (s): from result.json (a finished run), else the last line of
    eval.jsonl, else the run's TensorBoard log."""
    result = run.path / "result.json"
    if result.is_file():
        data = json.loads(result.read_text())
        return int(data["num_timesteps"]), data.get("wall_time_s")
    evals = run.path / "eval.jsonl"
    if evals.is_file():
        lines = [json.loads(line) for line in evals.read_text().splitlines() if line.strip()]
        if lines:
            return int(lines[-1]["step"]), lines[-1].get("wall_time_s")
    return _steps_from_events(log_dir(run))


def _steps_from_events(directory: Path) -> tuple[int | None, float | None]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    max_step, first, last = None, math.inf, -math.inf
    for path in sorted(directory.glob("events.out.tfevents.*")):
        if path.name.endswith(".evaluate"):
            continue
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                max_step = event.step if max_step is None else max(max_step, event.step)
                first, last = min(first, event.wall_time), max(last, event.wall_time)
    return max_step, (last - first if math.isfinite(first) else None)


def log_dir(run: Run) -> Path:
    """The folder of the run's training TensorBoard events (evaluation summaries go next to them)."""
    for path in sorted(run.path.rglob("events.out.tfevents.*")):
        if not path.name.endswith(".evaluate") and IMAGES_DIR not in path.parts:
            return path.parent
    return run.path


def policy_shape(policy: Any) -> dict[str, int]:
    """Feature dim, classes and cells a loaded policy was built for (ours: network config; SB3: its spaces)."""
    cfg = getattr(getattr(policy, "network", None), "config", None)
    if cfg is not None:
        return {"feature_dim": cfg.feature_dim, "num_classes": cfg.num_classes, "num_cells": cfg.num_cells}
    model = getattr(policy, "model", None)
    obs_space, act_space = getattr(model, "observation_space", None), getattr(model, "action_space", None)
    if obs_space is None or act_space is None or "glimpse" not in getattr(obs_space, "spaces", {}):
        return {}
    nvec = np.asarray(act_space.nvec)
    return {"feature_dim": int(obs_space["glimpse"].shape[0]), "num_classes": int(nvec[1]), "num_cells": int(nvec[0])}


def check_same_data(run: Run, source: Any, policy: Any) -> None:
    """``RunError`` when the env's data differ from what the run was trained on."""
    now = source.identity()
    trained = run.config.get("data") or {}

    def show(v: Any) -> str:
        return f"{len(v)} classes {v[:3]}..." if isinstance(v, list) else repr(v)

    diffs = []
    for key, was in trained.items():
        if key in now and now[key] != was:
            diffs.append(f"{key}: trained on {show(was)}, now {show(now[key])}")
    env_shape = {"feature_dim": source.feature_dim, "num_classes": len(source.class_names),
                 "num_cells": source.grid**2}
    for key, value in policy_shape(policy).items():
        if value != env_shape[key] and not any(d.startswith(key) for d in diffs):
            diffs.append(f"{key}: the model takes {value}, the env gives {env_shape[key]}")
    if diffs:
        raise RunError(
            f"the data of {run.env_id} ({source.description or 'synthetic'}) differ from those run "
            f"'{run.path}' was trained on: " + "; ".join(diffs) + ". Evaluate on the store it was trained on "
            "(--data-root <store>) or retrain on this one."
        )


# ============================================================================================== evaluation
@dataclass
class Options:
    """Evaluation settings (the CLI's arguments)."""

    subset: str = "test"
    episodes: int | None = None
    seed: int = 0
    device: str = "cpu"
    n_envs: int = 64
    video: bool = True
    maps: int = 4
    data_root: str | None = None
    checkpoint: str | None = None
    activitynet_gt: str | None = None
    export_activitynet: str | None = None
    progress: bool = True
    tensorboard: bool = True

    def reuse_key(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in REUSE_KEYS}


def make_env(run: Run, opts: Options, num_envs: int) -> Any:
    """The run's env (its own arguments) on the evaluation subset, as the batched vector env."""
    import gymnasium as gym

    import envs
    from envs.store import StoreError

    if run.env_id not in gym.registry:
        raise RunError(f"run '{run.path}' was trained on env {run.env_id!r}, which is not registered here "
                       f"(known: {', '.join(envs.ENV_IDS)}).")
    kwargs = {**run.env_kwargs, "subset": opts.subset}
    if opts.data_root is not None:
        kwargs["data_root"] = opts.data_root
    try:
        return gym.make_vec(run.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except (StoreError, ValueError, TypeError) as exc:
        raise RunError(
            f"cannot build the env of run '{run.path}' ({run.env_id}, subset {opts.subset!r}): {exc}") from None


def _activitynet_subset(subset: str) -> str:
    from envs.sources import ACTIVITYNET_SUBSET_ALIASES

    return ACTIVITYNET_SUBSET_ALIASES.get(subset, subset)


def _num(v: Any) -> Any:
    """JSON-safe number: NaN / inf -> None, numpy scalars -> Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return _num(obj)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "clip"


def pick_map_clips(correct: np.ndarray, count: int) -> list[int]:
    """Indices (into the sweep) of up to ``count`` clips: right and wrong ones alternately (Fig. 2 and 3)."""
    right, wrong = list(np.nonzero(correct)[0]), list(np.nonzero(~correct)[0])
    chosen: list[int] = []
    while len(chosen) < count and (right or wrong):
        for pool in (right, wrong):
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop(0)))
    return chosen


def draw_outputs(run: Run, env: Any, result: Any, details: dict[str, Any], opts: Options) -> dict[str, Any]:
    """Confusion matrix and attention maps (PNG, GIF) under ``<run>/evaluation/``; returns images by name."""
    from agents.attention_maps import AttentionTrace, attention_map, confusion_image, write_gif, write_png
    from envs.render import FrameRenderer

    out = run.path / IMAGES_DIR
    out.mkdir(exist_ok=True)
    for old in out.glob("attention_*"):  # maps of an earlier evaluation would be mistaken for this one's
        old.unlink()
    source, rules = env.unwrapped.source, env.unwrapped.rules
    cm_image = confusion_image(details["confusion_matrix"], source.class_names,
                               f"{run.algo} on {run.env_id} ({opts.subset}): confusion, row-normalised")
    images: dict[str, Any] = {"confusion_matrix": (cm_image, write_png(out / "confusion_matrix.png", cm_image))}
    if not opts.video or opts.maps <= 0:
        return images
    renderer = FrameRenderer(source, rules)
    frames = np.asarray(rules.frame_of(np.arange(result.locations.shape[1])))
    for k, i in enumerate(pick_map_clips(details["correct"], opts.maps)):
        trace = AttentionTrace(
            clip=int(result.clips[i]), video_id=result.video_ids[i], label=int(result.labels[i]), frames=frames,
            locations=result.locations[i], predictions=result.step_predictions[i],
            prediction=int(result.predictions[i]), correct=bool(details["correct"][i]),
        )
        image, panels = attention_map(renderer, trace, run.algo)
        stem = f"attention_{k}_{_safe_name(trace.video_id)}"
        write_gif(out / f"{stem}.gif", panels, fps=4)
        images[f"attention_map/{k}"] = (image, write_png(out / f"{stem}.png", image))
    return images


def evaluate_run(run: Run, opts: Options) -> dict[str, Any]:
    """Evaluate one run and write its eval.json, eval.md, images and TensorBoard summaries; returns eval.json."""
    import torch

    from agents import metrics as M

    torch.manual_seed(opts.seed)
    policy = load_run_policy(run, opts.device, opts.seed, opts.checkpoint)
    probe = make_env(run, opts, 1)
    num_clips = int(probe.unwrapped.num_clips)
    check_same_data(run, probe.unwrapped.source, policy)
    cube = M.reads_cube(policy, probe)
    probe.close()
    ground_truth = None
    if opts.activitynet_gt:
        try:
            ground_truth = M.load_activitynet_ground_truth(opts.activitynet_gt, _activitynet_subset(opts.subset))
        except M.GroundTruthError as exc:
            raise RunError(str(exc)) from None
    clips = M.choose_clips(num_clips, opts.episodes, opts.seed)
    env = make_env(run, opts, max(1, min(opts.n_envs, len(clips))))
    result = M.run_sweep(env, policy, clips, opts.seed, opts.progress, desc=run.name[:40])
    metrics, details = M.score(result, env.unwrapped.source, env.unwrapped.rules, cube, ground_truth)
    single = make_env(run, opts, 1)
    flops, latency = M.measure_cost(single, policy, int(clips[0]), opts.seed)
    single.close()
    metrics["attention_flops_per_clip"] = flops
    metrics["latency_ms_per_clip"] = latency
    steps, wall = steps_and_wall_time(run)
    model = model_file(run, opts.checkpoint)
    report: dict[str, Any] = {
        "format": EVAL_FORMAT,
        "run": str(run.path),
        "algo": run.algo,
        "env_id": run.env_id,
        "env_kwargs": {**run.env_kwargs, "subset": opts.subset},
        "split": run.env_kwargs.get("split"),
        "settings": opts.reuse_key() | {"device": opts.device, "n_envs": opts.n_envs},
        "model": _model_record(run, model),
        "training": {"steps_trained": steps, "wall_time_s": wall},
        "metrics": metrics,
        "definitions": {
            "accuracy": f"clip prediction = {AGGREGATION}; right when it is one of the clip's labels",
            "mean_ap": "ActivityNet untrimmed classification mAP, computed like the fixed official evaluator "
                       f"over {details['mean_ap_classes']} classes with positives; no blocked videos (offline); "
                       "class scores = mean per-step softmax probability"
                       + (f"; ground truth {opts.activitynet_gt}" if opts.activitynet_gt else
                          "; ground truth = the store's labels of the evaluated clips"),
            "focus_accuracy": "share of the glimpses the policy read (first one: the env's start cell) that lie "
                              "on the ground-truth action core",
            "cells_read_per_clip": "distinct (frame, cell) pairs read: 49 per frame for policies that read the "
                                   "whole cube" + (" (this one does)" if cube else " (this one reads glimpses only)"),
            "attention_flops_per_clip": "torch.utils.flop_counter.FlopCounterMode over the policy's act() calls "
                                        "for one clip (matrix products + elementwise products and sums)",
            "cnn_flops_per_clip": "cells read x (GoogLeNet FLOPs to inception5b per frame / 49)",
            "latency_ms_per_clip": f"median wall time of one clip alone (batch 1, policy + env) on {opts.device}",
            "paper_reward": "eq. 7 with the env's eta, R+ and R- over every step's prediction",
        },
        "per_class": details["per_class"],
        "confusion_matrix": details["confusion_matrix"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if opts.export_activitynet:
        path = Path(opts.export_activitynet)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(details["activitynet_results"]))
        report["activitynet_export"] = str(path)
    images = draw_outputs(run, env, result, details, opts)
    env.close()
    report["images"] = {k: str(p.relative_to(run.path)) for k, (_, p) in images.items()}
    report = _clean(report)
    (run.path / EVAL_JSON).write_text(json.dumps(report, indent=1))
    (run.path / EVAL_MD).write_text(markdown_report(report))
    if opts.tensorboard:
        write_tensorboard(run, report, images)
    return report


def _model_record(run: Run, model: Path | None) -> dict[str, Any] | None:
    """Which file was evaluated (relative to the run when inside it), with its mtime and size for reuse checks."""
    if model is None:
        return None
    name = str(model.relative_to(run.path)) if model.is_relative_to(run.path) else str(model)
    return {"file": name, "mtime": model.stat().st_mtime, "bytes": model.stat().st_size}


# ============================================================================================== outputs
def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "flops":
        return _si(value)
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


METRIC_ROWS = (("accuracy", "top-1 accuracy", "pct"), ("top5_accuracy", "top-5 accuracy", "pct"),
               ("mean_ap", "mAP (ActivityNet evaluator)", "pct"), ("hit_at_3", "Hit@3", "pct"),
               ("focus_accuracy", "focus accuracy", "pct"), ("glimpses_per_clip", "glimpses per clip", ""),
               ("cells_read_per_clip", "cells read per clip", ""),
               ("attention_flops_per_clip", "attention-model FLOPs per clip", "flops"),
               ("cnn_flops_per_clip", "CNN FLOPs per clip (cells read share)", "flops"),
               ("latency_ms_per_clip", "latency per clip (ms)", ""), ("clips_per_second", "throughput (clips/s)", ""),
               ("paper_reward", "paper reward (eq. 7)", ""), ("mean_return", "mean env return", ""),
               ("step_accuracy", "per-step accuracy", "pct"), ("last_step_accuracy", "last-step accuracy", "pct"),
               ("n_clips", "clips evaluated", "int"))


def markdown_report(report: dict[str, Any]) -> str:
    """The Markdown report of one evaluation."""
    m, t = report["metrics"], report["training"]
    lines = [f"# Evaluation of `{Path(report['run']).name}`", "",
             f"- algorithm `{report['algo']}` on `{report['env_id']}` with `{json.dumps(report['env_kwargs'])}`",
             f"- steps trained: {_fmt(t['steps_trained'], 'int')}; training wall time: "
             f"{_fmt(t['wall_time_s'])} s; evaluated {report['created']}", "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {label} | {_fmt(m.get(key), kind)} |" for key, label, kind in METRIC_ROWS]
    lines += ["", "Definitions:", ""] + [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    lines += ["", "## Per-class accuracy", "", "| class | clips | accuracy | AP |", "|---|---:|---:|---:|"]
    lines += [f"| {r['class']} | {r['clips']} | {_fmt(r['accuracy'], 'pct')} | {_fmt(r['average_precision'], 'pct')} |"
              for r in report["per_class"]]
    lines += ["", "## Images", ""] + [f"![{k}]({p})" for k, p in report.get("images", {}).items()]
    return "\n".join(lines) + "\n"


def flat_hparams(run: Run, subset: str) -> dict[str, Any]:
    """A run's settings as TensorBoard hparams (scalars and strings only)."""
    out: dict[str, Any] = {"algo": run.algo, "env_id": run.env_id, "seed": run.seed, "eval_subset": subset}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}/{k}", v)
        elif isinstance(value, bool | int | float | str):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value)

    put("env", run.env_kwargs)
    put("hp", run.hyperparams)
    for key in ("total_timesteps", "n_envs"):
        if key in run.config:
            put(key, run.config[key])
    return {k: ("None" if v is None else v) for k, v in out.items()}


def write_tensorboard(run: Run, report: dict[str, Any], images: dict[str, Any]) -> None:
    """``eval/...`` scalars, images, per-class text and an hparams session, in the run's TensorBoard log."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    step = report["training"]["steps_trained"] or 0
    metrics = {f"eval/{k}": v for k, v in report["metrics"].items() if isinstance(v, int | float)}
    writer = SummaryWriter(log_dir=str(log_dir(run)), filename_suffix=".evaluate")
    try:
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)
        for name, (image, _) in images.items():
            writer.add_image(f"eval/{name}", image, step, dataformats="HWC")
        table = ["| class | clips | accuracy |", "|---|---:|---:|"] + [
            f"| {r['class']} | {r['clips']} | {_fmt(r['accuracy'], 'pct')} |" for r in report["per_class"]]
        writer.add_text("eval/per_class_accuracy", "\n".join(table), step)
        accs = [r["accuracy"] for r in report["per_class"] if r["accuracy"] is not None]
        if accs:
            writer.add_histogram("eval/per_class_accuracy", np.array(accs), step)
        writer.add_text("eval/report", markdown_report(report), step)
        _, start, end = hparams(flat_hparams(run, report["env_kwargs"]["subset"]), metrics)
        writer.file_writer.add_summary(start)
        writer.file_writer.add_summary(end)
    finally:
        writer.close()


# ============================================================================================== compare
LEADERBOARD_COLUMNS = (
    ("run", "run", ""), ("algo", "algo", ""), ("obs", "obs", ""), ("accuracy", "accuracy", "pct"),
    ("top5_accuracy", "top-5", "pct"), ("mean_ap", "mAP", "pct"), ("focus_accuracy", "focus", "pct"),
    ("glimpses_per_clip", "glimpses/clip", ""), ("cells_read_per_clip", "cells read/clip", ""),
    ("attention_flops_per_clip", "attention FLOPs/clip", "flops"), ("cnn_flops_per_clip", "CNN FLOPs/clip", "flops"),
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
    same = old.get("format") == EVAL_FORMAT and all(old.get("settings", {}).get(k) == v
                                                    for k, v in opts.reuse_key().items())
    return old if same and same_model else None


def leaderboard_row(run_name: str, report: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    if report is None:
        return {"run": run_name, "status": f"failed: {error}"}
    return {"run": run_name, "algo": report["algo"], "obs": report["env_kwargs"].get("observation_mode", "cube"),
            **report["metrics"], **report["training"], "status": "ok"}


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
            rows.append(leaderboard_row(folder.name, report))
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, RunError):
                message = f"{type(exc).__name__}: {message}"
                traceback.print_exc(file=sys.stderr)
            print(f"evaluate: {folder}: {message}", file=sys.stderr)
            rows.append(leaderboard_row(folder.name, None, message))
    runs = list(zip(folders, rows, strict=True))  # before sorting: row i is folder i
    rows.sort(key=lambda r: (r["status"] != "ok", -(r.get(sort_by) or 0.0), r.get("attention_flops_per_clip") or 0))
    out = out or _common_parent(folders)
    out.mkdir(parents=True, exist_ok=True)
    from agents.statistics import leaderboard_section  # seeds of one setting -> mean, IQM, 95 % CI

    seed_section = leaderboard_section(runs, out, sort_by, opts.seed)
    (out / "leaderboard.md").write_text(leaderboard_markdown(rows, sort_by) + seed_section)
    if seed_section:
        print(seed_section)
    (out / "leaderboard.json").write_text(json.dumps(_clean(rows), indent=1))
    write_accuracy_vs_flops(rows, out / "accuracy_vs_flops.png")
    return rows


def _common_parent(folders: Sequence[Path]) -> Path:
    if not folders:
        return Path(".")
    return Path(os.path.commonpath([str(f.resolve().parent) for f in folders]))


def leaderboard_markdown(rows: Sequence[dict[str, Any]], sort_by: str = "accuracy") -> str:
    head = ["#"] + [label for _, label, _ in LEADERBOARD_COLUMNS] + ["status"]
    lines = [f"Leaderboard (sorted by {sort_by}; clip prediction = {AGGREGATION}).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(rows, 1):
        cells = [str(i)] + [_fmt(row.get(key), kind) if row["status"] == "ok" or key == "run" else ""
                            for key, _, kind in LEADERBOARD_COLUMNS] + [row["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_accuracy_vs_flops(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Two scatter plots side by side: accuracy vs attention-model FLOPs per clip, and vs those plus the CNN
    share of the cells read (what a clip costs when features are computed only where the policy looks)."""
    from agents.attention_maps import Point, scatter_plot, write_png

    ok = [r for r in rows if r["status"] == "ok" and r.get("attention_flops_per_clip")]
    label = [f"{r['algo']} ({r['obs']})" for r in ok]
    attention = [Point(r["attention_flops_per_clip"], 100 * r["accuracy"], text, r["algo"])
                 for r, text in zip(ok, label, strict=True)]
    total = [Point(r["attention_flops_per_clip"] + (r.get("cnn_flops_per_clip") or 0.0), 100 * r["accuracy"], text,
                   r["algo"]) for r, text in zip(ok, label, strict=True)]
    size = (720, 520)
    left = scatter_plot(attention, "attention-model FLOPs per clip", "accuracy (%)",
                        "accuracy vs attention-model FLOPs", y_range=(0.0, 100.0), size=size)
    right = scatter_plot(total, "attention-model + CNN FLOPs per clip", "accuracy (%)",
                         "accuracy vs FLOPs incl. CNN on cells read", y_range=(0.0, 100.0), size=size)
    return write_png(path, np.hstack([left, right]))


# ============================================================================================== splits
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
            values = [_fmt(reports[s]["metrics"][key], kind) for s in splits]
            lines.append(f"| {label} | " + " | ".join(values) + f" | {_fmt(mean[key], kind)} |")
    out = out or _common_parent([r.path for r in runs])
    out.mkdir(parents=True, exist_ok=True)
    (out / "splits.json").write_text(json.dumps(_clean(summary), indent=1))
    (out / "splits.md").write_text("HMDB-51, one run per official split; the mean is what the literature reports.\n\n"
                                   + "\n".join(lines) + "\n")
    summary["markdown"] = "\n".join(lines)
    return summary


# ============================================================================================== CLI
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
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draw, env resets and policy draws")
    parser.add_argument("--device", default="cpu", help="torch device of the policy (cpu, cuda, ...)")
    parser.add_argument("--n-envs", type=int, default=64, help="clips evaluated in one lockstep batch")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    limits = (("--episodes", args.episodes, 1), ("--n-envs", args.n_envs, 1), ("--maps", args.maps, 0))
    for flag, value, least in limits:
        if value is not None and value < least:
            parser.error(f"{flag} must be >= {least}, got {value}")
    if args.export_activitynet and (args.compare or args.split or len(args.runs) > 1):
        parser.error("--export-activitynet writes the predictions of a single run; pass one run folder")
    from agents.devices import DeviceError, check_device

    try:
        check_device(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
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
            print(f"{path}: " + ", ".join(f"{label} {_fmt(report['metrics'].get(key), kind)}"
                                          for key, label, kind in METRIC_ROWS[:9]))
            print(f"  report: {Path(path) / EVAL_MD}")
        return 0
    except RunError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
