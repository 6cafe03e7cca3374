"""Run folders: one per training run, ``runs/<env>__<algo>__<seed>__<time>/``::

    config.json          everything needed to rebuild the env and the model: env id and kwargs, algorithm,
                         resolved hyperparameters, seed, n_envs, all CLI arguments, package versions, git commit
    events.out.tfevents.*  TensorBoard (shared tags; x axis = env steps)
    checkpoints/         step_<env steps>.pt|.zip (periodic, and on Ctrl-C)
    model.pt|model.zip   the final model
    eval.jsonl           one line per evaluation on the test subset
    result.json          the final evaluation, env steps trained and wall time
    .lock                the write lock (``envs.files``): one process trains (or resumes) a run at a time

:func:`load_policy` turns any run folder into a :class:`~agents.algorithms.policy.Policy`.
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from agents.algorithms.policy import Policy
from envs.files import LOCK_FILE, FolderLock, lock_folder, lock_holder, replace_atomically, safe_name
from envs.files import write_json_atomic as write_json

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
EVAL_LOG = "eval.jsonl"
RESULTS_FILE = "result.json"
VERSIONED_PACKAGES = ("gymnasium", "stable-baselines3", "sb3-contrib", "torch", "numpy", "rl_zoo3", "tensorboard")
_CHECKPOINT_RE = re.compile(r"^step_(\d+)\.(pt|zip)$")
#: Layout version of config.json; a reader refuses another one.
CONFIG_FORMAT = 1


class RunFolderError(ValueError):
    """A run folder is missing, incomplete, or does not match the request."""


class FormatError(RunFolderError):
    """A file written in a layout this code does not read (by another version of the toolkit)."""


def check_format(data: Any, expected: int, path: Path | str) -> None:
    """Raise :class:`FormatError` when ``data["format"]`` is present and is not ``expected``."""
    found = data.get("format", expected) if isinstance(data, dict) else expected
    if found != expected:
        raise FormatError(f"{path} has format {found!r} but this code reads format {expected}: "
                          "use the version of the toolkit that wrote it")


def run_name(env_id: str, algo: str, seed: int, tag: str | None = None, now: float | None = None) -> str:
    """``<env>__<algo>__<seed>__<tag>``, the tag defaulting to the time ``YYYYmmdd-HHMMSS`` (``module:Class``
    algos keep only safe characters). A sweep's tag names its trial instead (``agents.training.sweep``)."""
    if tag is None:
        tag = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{env_id}__{safe_name(algo)}__{seed}__{tag}"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the repository holding this code (None outside git); ``+dirty`` with local changes."""
    where = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


class RunFolder:
    """Paths and files of one run folder."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock: FolderLock | None = None

    def lock(self) -> None:
        """Take the run's write lock (``envs.files.FolderInUseError`` names the process already holding it)."""
        if self._lock is None or not self._lock.held:
            self._lock = lock_folder(self.path, "run folder")

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def writer_pid(self) -> int | None:
        """The pid of another live process writing this run (training it), else None."""
        if self._lock is not None and self._lock.held:
            return None
        return lock_holder(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def create(self, config: dict[str, Any]) -> None:
        """Make the folder, take its write lock and write ``config.json``."""
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise RunFolderError(f"run folder {self.path} already exists and is not empty; pick another --run-name")
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock()
        self.checkpoint_dir.mkdir(exist_ok=True)
        write_json(self.config_path, config)

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise RunFolderError(f"{self.path} is not a run folder: it has no {CONFIG_FILE}")
        try:
            config = json.loads(self.config_path.read_text())
        except json.JSONDecodeError as exc:
            raise RunFolderError(f"{self.config_path} is not valid JSON: {exc}") from exc
        check_format(config, CONFIG_FORMAT, self.config_path)
        return config

    def checkpoint_path(self, step: int, suffix: str) -> Path:
        return self.checkpoint_dir / f"step_{step:012d}{suffix}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(env steps, path), oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for p in self.checkpoint_dir.iterdir():
            m = _CHECKPOINT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the ``keep`` newest checkpoints (and their side files)."""
        for _, path in self.checkpoints()[:-keep] if keep > 0 else []:
            for side in path.parent.glob(path.stem + ".*"):
                side.unlink(missing_ok=True)

    def model_path(self, config: dict[str, Any] | None = None) -> Path:
        """The final model file (named in config.json; else the first of model.pt / model.zip present)."""
        config = config or self.read_config()
        if "model_file" in config:
            return self.path / config["model_file"]
        for name in ("model.pt", "model.zip"):
            if (self.path / name).is_file():
                return self.path / name
        return self.path / "model.pt"

    def append_eval(self, record: dict[str, Any]) -> None:
        with open(self.path / EVAL_LOG, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def read_evals(self) -> list[dict[str, Any]]:
        path = self.path / EVAL_LOG
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_evals(self, max_step: int) -> None:
        """Drop evaluations after ``max_step`` (a resumed run redoes them)."""
        path = self.path / EVAL_LOG
        if path.is_file():
            kept = [r for r in self.read_evals() if r["step"] <= max_step]
            replace_atomically(path, "".join(json.dumps(r) + "\n" for r in kept))


def load_policy(run_dir: Path | str, device: str = "cpu", checkpoint: Path | str | None = None) -> Policy:
    """The trained policy of a run folder: its final model, else its latest checkpoint (or ``checkpoint``).

    The returned :class:`Policy` acts on the env rebuilt by :func:`make_env_from_run`.
    """
    from agents.algorithms.base import load_network_policy, load_network_policy_from_checkpoint
    from agents.training.registry import resolve_algorithm

    run = RunFolder(run_dir)
    config = run.read_config()
    spec = resolve_algorithm(config["algo"])
    path = Path(checkpoint) if checkpoint is not None else run.model_path(config)
    is_final = checkpoint is None and path.is_file()
    if not is_final and checkpoint is None:
        latest = run.latest_checkpoint()
        if latest is None:
            raise RunFolderError(f"{run.path} has neither a final model ({path.name}) nor a checkpoint")
        path = latest
    if spec.is_sb3:
        from agents.algorithms.sb3 import SB3Policy, load_model, vecnormalize_path

        model = load_model(spec.cls, path, device=device)
        norm_path = vecnormalize_path(path)
        normalizer = None
        if norm_path.is_file():
            with open(norm_path, "rb") as f:
                normalizer = pickle.load(f)
            normalizer.training = False
        return SB3Policy(model, normalizer)
    if is_final:
        return load_network_policy(path, device=device)
    if "model" not in config:
        raise RunFolderError(f"{run.path}/{CONFIG_FILE} lacks 'model' (the network layout) needed to load {path}")
    return load_network_policy_from_checkpoint(path, config["model"], device=device)


def make_env_from_run(run_dir: Path | str, *, num_envs: int = 1, subset: str | None = "test") -> Any:
    """The batched vector env a run was trained on (``subset`` overrides the env's subset; None keeps it)."""
    from agents.training.envutil import make_vector_env

    config = RunFolder(run_dir).read_config()
    kwargs = dict(config["env_kwargs"])
    if subset is not None:
        kwargs["subset"] = subset
    return make_vector_env(config["env_id"], kwargs, num_envs)
