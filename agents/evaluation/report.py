"""Evaluate one run (:func:`evaluate_run`): play its policy on a subset, score it, and write ``eval.json``,
the Markdown report ``eval.md``, the images and the TensorBoard summaries."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.episodes import AGGREGATION
from agents.evaluation.run import (
    EVAL_JSON,
    EVAL_MD,
    IMAGES_DIR,
    Run,
    RunError,
    check_same_data,
    load_run_policy,
    log_dir,
    model_file,
    steps_and_wall_time,
)
from envs.files import safe_name

#: Layout version of eval.json; 2 holds the cost account (values and bytes read, the whole CNN per frame; "reads").
EVAL_FORMAT = 2
#: Settings that must match for a stored eval.json to be reused by --compare.
REUSE_KEYS = ("subset", "episodes", "seed", "data_root", "activitynet_gt", "checkpoint")


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


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy arrays and scalars as Python lists and numbers, NaN / inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return _num(obj)


def _safe_name(text: str) -> str:
    return safe_name(text, "_").strip("_")[:60] or "clip"


def pick_map_clips(correct: np.ndarray, count: int) -> list[int]:
    """Indices (into the clips played) of up to ``count`` clips: right and wrong ones alternately (Fig. 2 and 3)."""
    right, wrong = list(np.nonzero(correct)[0]), list(np.nonzero(~correct)[0])
    chosen: list[int] = []
    while len(chosen) < count and (right or wrong):
        for pool in (right, wrong):
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop(0)))
    return chosen


def draw_outputs(run: Run, env: Any, result: Any, details: dict[str, Any], opts: Options) -> dict[str, Any]:
    """Confusion matrix and attention maps (PNG, GIF) under ``<run>/evaluation/``; returns images by name."""
    from agents.evaluation.images import AttentionTrace, attention_map, confusion_image, write_gif, write_png
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
    frames = np.asarray(rules.frame_of(np.arange(result.steps)))
    for k, i in enumerate(pick_map_clips(details["correct"], opts.maps)):
        n = int(result.lengths[i])  # the steps the clip took (an early exit takes fewer)
        trace = AttentionTrace(
            clip=int(result.clips[i]), video_id=result.video_ids[i], label=int(result.labels[i]), frames=frames[:n],
            locations=result.locations[i, :n], predictions=result.step_predictions[i, :n],
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

    from agents.evaluation import metrics as M
    from agents.evaluation.episodes import choose_clips, play_clips

    torch.manual_seed(opts.seed)
    # The run's write lock is held while it trains: its newest checkpoint is evaluated, and the report says so.
    still_training = training_pid(run)
    policy = load_run_policy(run, opts.device, opts.seed, opts.checkpoint)
    probe = make_env(run, opts, 1)
    num_clips = int(probe.unwrapped.num_clips)
    check_same_data(run, probe.unwrapped.source, policy)
    cube, periphery = M.reads_cube(policy, probe), M.reads_periphery(policy, probe)
    probe.close()
    ground_truth = None
    if opts.activitynet_gt:
        try:
            ground_truth = M.load_activitynet_ground_truth(opts.activitynet_gt, _activitynet_subset(opts.subset))
        except M.GroundTruthError as exc:
            raise RunError(str(exc)) from None
    clips = choose_clips(num_clips, opts.episodes, opts.seed)
    env = make_env(run, opts, max(1, min(opts.n_envs, len(clips))))
    result = play_clips(env, policy, clips, opts.seed, opts.progress, desc=run.name[:40])
    metrics, details = M.score(result, env.unwrapped.source, env.unwrapped.rules, cube, ground_truth, periphery)
    single = make_env(run, opts, 1)
    flops, latency = M.measure_cost(single, policy, int(clips[0]), opts.seed)
    single.close()
    metrics["attention_flops_per_clip"] = flops
    metrics["latency_ms_per_clip"] = latency
    threads = torch.get_num_threads()
    steps, wall = steps_and_wall_time(run)
    model = model_file(run, opts.checkpoint)
    report: dict[str, Any] = {
        "format": EVAL_FORMAT,
        "run": str(run.path),
        "algo": run.algo,
        "env_id": run.env_id,
        "env_kwargs": {**run.env_kwargs, "subset": opts.subset},
        "reads": "cube" if cube else "glimpse + periphery" if periphery else "glimpse",
        "split": run.env_kwargs.get("split"),
        "settings": opts.reuse_key() | {"device": opts.device, "n_envs": opts.n_envs, "threads": threads},
        "model": _model_record(run, model),
        "training": {"steps_trained": steps, "wall_time_s": wall, "still_training": still_training},
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
            "feature_values_read_per_clip": "feature values the policy read: distinct cells x D, plus 49 x k "
                                            "(2k with its motion) per frame for the periphery"
                                            + (" (read)" if periphery else " (not read)"),
            "store_bytes_read_per_clip": "those values in the store's float16 (2 bytes each)",
            "share_of_cube_read": "feature values read / the values of the frames' whole cubes (49 x D per frame)",
            "frames_watched_per_clip": "frames the policy's predictions used (fewer than T with a glimpse budget "
                                       "or an early exit): frames never reached are never computed",
            "cnn_flops_per_frame": "FLOPs of one frame's 49 cells (meta.json; torch.utils.flop_counter), "
                                   f"{metrics['cnn_cells']}-frame cells",
            "cnn_flops_per_clip": CNN_FLOPS_DEFINITION[metrics["cnn_cells"]],
            "cnn_flops_full_clip": "GoogLeNet on all T whole frames: the full-frame pipeline's cost",
            "cnn_share_of_full": "cnn_flops_per_clip / cnn_flops_full_clip",
            "latency_ms_per_clip": f"median wall time of one clip alone (batch 1, policy + env) on {opts.device} "
                                   f"with {threads} torch CPU thread{'s' if threads != 1 else ''} (evaluate.py "
                                   "--threads); other jobs on the same cores slow it down",
            "paper_reward": "eq. 7 with the env's eta, R+ and R- over every step's prediction (a clip that "
                            "stopped early commits its last prediction to the steps it did not take)",
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
    report = json_safe(report)
    (run.path / EVAL_JSON).write_text(json.dumps(report, indent=1))
    (run.path / EVAL_MD).write_text(markdown_report(report))
    if opts.tensorboard:
        write_tensorboard(run, report, images)
    return report


#: What ``cnn_flops_per_clip`` counts, by the store's cell kind.
CNN_FLOPS_DEFINITION = {
    "full": "the whole CNN for every frame watched: a full-frame cell's receptive field covers most of the frame "
            "(and the channel-group periphery needs every cell), so no policy on these features computes less",
    "crop": "per frame watched, the glance (when the policy reads the periphery) plus one crop per distinct cell "
            "looked at (49 for a policy that reads the cube): a crop cell depends only on its own pixels",
}


def _model_record(run: Run, model: Path | None) -> dict[str, Any] | None:
    """Which file was evaluated (relative to the run when inside it), with its mtime and size for reuse checks."""
    if model is None:
        return None
    name = str(model.relative_to(run.path)) if model.is_relative_to(run.path) else str(model)
    return {"file": name, "mtime": model.stat().st_mtime, "bytes": model.stat().st_size}


# ---------------------------------------------------------------------------------------------- outputs
def fmt(value: Any, kind: str = "") -> str:
    """A metric as report text: ``kind`` "pct", "flops" (SI prefix), "int" or "" (3 significant digits)."""
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "flops":
        return _si(value)
    if kind == "bytes":
        return _si(value) + "B"
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
               ("feature_values_read_per_clip", "feature values read per clip", "flops"),
               ("share_of_cube_read", "share of the cube's values read", "pct"),
               ("store_bytes_read_per_clip", "bytes read from the store per clip", "bytes"),
               ("attention_flops_per_clip", "attention-model FLOPs per clip", "flops"),
               ("frames_watched_per_clip", "frames watched per clip", ""),
               ("cnn_flops_per_frame", "CNN FLOPs per frame (all 49 cells)", "flops"),
               ("cnn_flops_per_clip", "CNN FLOPs per clip (what the policy needs computed)", "flops"),
               ("cnn_share_of_full", "share of the full-frame CNN on every frame", "pct"),
               ("latency_ms_per_clip", "latency per clip (ms)", ""), ("clips_per_second", "throughput (clips/s)", ""),
               ("paper_reward", "paper reward (eq. 7)", ""), ("mean_return", "mean env return", ""),
               ("step_accuracy", "per-step accuracy", "pct"), ("last_step_accuracy", "last-step accuracy", "pct"),
               ("n_clips", "clips evaluated", "int"))


def summary_line(report: dict[str, Any]) -> str:
    """The headline metrics of one evaluation on one line."""
    return ", ".join(f"{label} {fmt(report['metrics'].get(key), kind)}" for key, label, kind in METRIC_ROWS[:9])


def training_pid(run: Run) -> int | None:
    """The pid of the process still training ``run`` (holding its write lock), else None."""
    from envs.files import lock_holder

    return lock_holder(run.path)


def still_training_lines(report: dict[str, Any]) -> list[str]:
    """The report's warning that the run was still training when it was evaluated (none otherwise)."""
    pid = (report.get("training") or {}).get("still_training")
    if pid is None:
        return []
    model = (report.get("model") or {}).get("file", "its newest checkpoint")
    return [f"- **still training** (process {pid or 'unknown'}): evaluated `{model}`, a checkpoint of a run in "
            "progress; evaluate again when its training has finished"]


def markdown_report(report: dict[str, Any]) -> str:
    """The Markdown report of one evaluation."""
    m, t = report["metrics"], report["training"]
    lines = [f"# Evaluation of `{Path(report['run']).name}`", "",
             f"- algorithm `{report['algo']}` on `{report['env_id']}` with `{json.dumps(report['env_kwargs'])}`",
             f"- steps trained: {fmt(t['steps_trained'], 'int')}; training wall time: "
             f"{fmt(t['wall_time_s'])} s; evaluated {report['created']}",
             *still_training_lines(report), "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {label} | {fmt(m.get(key), kind)} |" for key, label, kind in METRIC_ROWS]
    lines += ["", "Definitions:", ""] + [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    lines += ["", "## Per-class accuracy", "", "| class | clips | accuracy | AP |", "|---|---:|---:|---:|"]
    lines += [f"| {r['class']} | {r['clips']} | {fmt(r['accuracy'], 'pct')} | {fmt(r['average_precision'], 'pct')} |"
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
            f"| {r['class']} | {r['clips']} | {fmt(r['accuracy'], 'pct')} |" for r in report["per_class"]]
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


