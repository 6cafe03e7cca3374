"""A training run folder as evaluation sees it: its config, its policy, its training log, its data.

Evaluation writes into the run folder: ``eval.json``, ``eval.md`` and ``evaluation/`` (images); the other
files are training's (:mod:`agents.training.runs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.training.runs import CONFIG_FILE, CONFIG_FORMAT, FormatError, check_format

EVAL_JSON, EVAL_MD, IMAGES_DIR = "eval.json", "eval.md", "evaluation"


class RunError(Exception):
    """A run that cannot be evaluated; the message names the problem and the fix."""


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
    try:
        check_format(config, CONFIG_FORMAT, config_path)
    except FormatError as exc:
        raise RunError(str(exc)) from None
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
    from agents.training.runs import RunFolder

    if checkpoint is not None:
        return Path(checkpoint)
    folder = RunFolder(run.path)
    final = folder.model_path(run.config)
    return final if final.is_file() else folder.latest_checkpoint()


def load_run_policy(run: Run, device: str, seed: int, checkpoint: str | None = None) -> Any:
    """The run's trained :class:`agents.algorithms.policy.Policy`; ``RunError`` for a missing or corrupt model."""
    import torch

    from agents import load_policy
    from agents.training.runs import FormatError, RunFolderError

    try:
        policy = load_policy(run.path, device=device, checkpoint=checkpoint)
    except FormatError as exc:
        raise RunError(str(exc)) from None
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


