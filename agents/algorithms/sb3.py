"""Stable-Baselines3 / sb3-contrib algorithms against the glimpse envs, with the same run folder and logging.

- :class:`GlimpseExtractor`: a features extractor for the env's ``Dict`` observation. The cube goes through
  one linear projection shared by all cells (D -> ``cell_dim``), so the policy keeps *where* things are
  (the flattened per-cell features) at the cost of a D x ``cell_dim`` layer instead of a 49*D-wide one;
  mean and max pooling of the cells summarise the frame. The ``periphery`` (glimpse mode's k values per cell)
  goes through its own shared per-cell projection the same way, so the policy can score cells from it without
  the cube. The glimpse gets its own projection; the location (one-hot, from SB3's preprocessing) and progress
  are passed through.
- :class:`SB3Algorithm`: builds the model on a ``DummyVecEnv`` of monitored single envs (optionally
  ``VecNormalize`` for the observation features, ``normalize: true``), forwards SB3's log records to the
  run's TensorBoard writer and drives evaluation, checkpoints and Ctrl-C through a callback.
- :class:`SB3Policy`: the uniform :class:`~agents.algorithms.policy.Policy` over any SB3 policy (recurrent ones too).
- :func:`load_model`: an SB3 zip of a run folder, whichever module name its pickles give our classes.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from agents.algorithms.base import Algorithm, Session
from agents.algorithms.policy import Policy
from agents.training.envutil import env_errors, register_envs
from agents.training.hyperparams import HyperparamError

#: keys of an SB3 hyperparameter entry that are ours, not the algorithm constructor's
OWN_KEYS = ("policy", "normalize", "n_envs", "n_timesteps", "eval_every")
#: constructor arguments we set ourselves
RESERVED_ARGS = ("self", "policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")
FEATURE_KEYS = ("glimpse", "periphery", "cube")
#: Module names that an SB3 zip may pickle our classes under (``policy_kwargs`` holds the features extractor class
#: by module path; run folders written with the package's flat ``agents.<module>`` layout name ``agents.sb3``)
#: -> the module that defines them.
PICKLED_MODULES = {"agents.sb3": "agents.algorithms.sb3"}


class UnsupportedActionSpaceError(ValueError):
    """The algorithm cannot act in the env's action space."""


class GlimpseExtractor(BaseFeaturesExtractor):
    """Features of the glimpse env's ``Dict`` observation. See the module docstring.

    :param glimpse_dim: width of the glimpse projection.
    :param cell_dim: width of the per-cell cube (and periphery) projection (shared by all cells).
    """

    def __init__(self, observation_space: spaces.Dict, glimpse_dim: int = 128, cell_dim: int = 16) -> None:
        d = int(observation_space["glimpse"].shape[0])
        cells = int(observation_space["location"].n)
        has_cube = "cube" in observation_space.spaces
        k = int(observation_space["periphery"].shape[-1]) if "periphery" in observation_space.spaces else 0
        per_frame = (cells + 2) * cell_dim  # every cell's projection, then their mean and max
        features = glimpse_dim + cells + 2 + (per_frame if has_cube else 0) + (per_frame if k else 0)
        super().__init__(observation_space, features_dim=features)
        self.glimpse = nn.Sequential(nn.Linear(d, glimpse_dim), nn.ReLU())
        self.cell = nn.Sequential(nn.Linear(d, cell_dim), nn.ReLU()) if has_cube else None
        self.periphery = nn.Sequential(nn.Linear(k, cell_dim), nn.ReLU()) if k else None

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        # SB3 one-hot encodes the Discrete location; from its rollout buffer it comes as (B, 1, K*K).
        location = observations["location"].reshape(observations["glimpse"].shape[0], -1)
        parts = [self.glimpse(observations["glimpse"]), location, observations["progress"]]
        for key, layer in (("periphery", self.periphery), ("cube", self.cell)):
            if layer is not None:
                grid = observations[key]
                cells = layer(grid.reshape(grid.shape[0], -1, grid.shape[-1]))  # (B, K*K, cell_dim)
                parts += [cells.flatten(1), cells.mean(1), cells.amax(1)]
        return torch.cat(parts, dim=-1)


def import_object(path: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"expected 'module:Name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} (from {path!r}): {exc}") from exc
    if not hasattr(module, name):
        raise ValueError(f"module {module_name!r} has no attribute {name!r}")
    return getattr(module, name)


def constructor_keys(algo_class: type[BaseAlgorithm]) -> set[str]:
    """Hyperparameters an SB3 class accepts: its constructor's arguments, less the ones we set."""
    params = inspect.signature(algo_class.__init__).parameters
    return {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD and n not in RESERVED_ARGS}


def _policy_kwargs(raw: dict[str, Any] | None) -> dict[str, Any]:
    """yaml policy_kwargs -> SB3 policy_kwargs (class paths resolved; our extractor by default)."""
    kwargs = dict(raw or {})
    extractor = kwargs.get("features_extractor_class", GlimpseExtractor)
    if isinstance(extractor, str):
        extractor = import_object(extractor)
    kwargs["features_extractor_class"] = extractor
    for key in ("activation_fn", "optimizer_class"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = import_object(kwargs[key])
    return kwargs


class _SessionWriter(KVWriter):
    """SB3 log records -> the session's TensorBoard writer (one events file per run)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        scalars = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and "tensorboard" in excluded:
                continue
            if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
                scalars[key] = float(value)
        self.session.log(step, scalars)

    def close(self) -> None:
        pass


class _SessionCallback(BaseCallback):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def _on_step(self) -> bool:
        self.session.on_iteration(self.num_timesteps, {})
        return not self.session.stop_requested


class SB3Algorithm(Algorithm):
    """An SB3-compatible algorithm class bound to one glimpse env. See the module docstring.

    :param hyperparams: constructor arguments of ``algo_class`` plus ``policy`` (default
        ``MultiInputPolicy``) and ``normalize`` (VecNormalize the feature observations).
    """

    model_filename = "model.zip"
    checkpoint_suffix = ".zip"

    def __init__(
        self,
        algo_class: type[BaseAlgorithm],
        env_id: str,
        env_kwargs: dict[str, Any],
        hyperparams: dict[str, Any],
        *,
        n_envs: int,
        seed: int,
        device: str = "cpu",
    ) -> None:
        register_envs()
        self.algo_class = algo_class
        hp = {k: v for k, v in hyperparams.items() if k not in ("n_envs", "n_timesteps", "eval_every")}
        policy = hp.pop("policy", "MultiInputPolicy")
        self.normalize = bool(hp.pop("normalize", False))
        hp["policy_kwargs"] = _policy_kwargs(hp.get("policy_kwargs"))
        with env_errors(env_id, env_kwargs):
            self.venv: VecEnv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
        if self.normalize:
            keys = [k for k in FEATURE_KEYS if k in self.venv.observation_space.spaces]  # type: ignore[attr-defined]
            self.venv = VecNormalize(self.venv, norm_obs=True, norm_reward=False, norm_obs_keys=keys)
        try:
            self.model = algo_class(policy, self.venv, seed=seed, device=device, verbose=0, **hp)
        except AssertionError as exc:
            self.venv.close()
            if "action space" in str(exc):
                names = re.findall(r"spaces\.\w+\.(\w+)'", str(exc)) or [str(exc)]
                reason = f"it supports only {' or '.join(names)} action spaces"
                raise unsupported_action_space(algo_class, self.venv.action_space, reason) from exc
            raise
        except TypeError as exc:  # e.g. a policy_kwargs entry the policy does not take
            self.venv.close()
            raise HyperparamError(f"{algo_class.__name__} rejected its hyperparameters: {exc}") from exc
        self._fresh = True

    @property
    def num_timesteps(self) -> int:  # type: ignore[override]
        return int(self.model.num_timesteps)

    def learn(self, total_timesteps: int, session: Session) -> None:
        self.model.set_logger(Logger(folder=None, output_formats=[_SessionWriter(session)]))
        remaining = total_timesteps - self.num_timesteps
        if remaining <= 0:
            return
        self.model.learn(
            total_timesteps=remaining, callback=_SessionCallback(session), reset_num_timesteps=self._fresh,
            log_interval=1,
        )
        self.model.logger.dump(self.num_timesteps)  # the last update's train/... records
        self._fresh = False

    def _obs_normalizer(self) -> VecNormalize | None:
        return self.venv if isinstance(self.venv, VecNormalize) else None

    def policy(self) -> Policy:
        return SB3Policy(self.model, self._obs_normalizer())

    def save_model(self, path: Path) -> None:
        self.model.save(path)
        if (norm := self._obs_normalizer()) is not None:
            norm.save(str(vecnormalize_path(path)))

    def save_checkpoint(self, path: Path) -> None:
        """:meth:`save_model` to temporary names, then renamed: a kill mid-save leaves no half checkpoint."""
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        self.save_model(tmp)
        if vecnormalize_path(tmp).is_file():
            vecnormalize_path(tmp).replace(vecnormalize_path(path))
        tmp.replace(path)  # last: the model file's presence is what makes a checkpoint

    def load_checkpoint(self, path: Path) -> None:
        if (norm := self._obs_normalizer()) is not None:
            saved = VecNormalize.load(str(vecnormalize_path(path)), norm.venv)
            norm.obs_rms = saved.obs_rms
        self.model = load_model(self.algo_class, path, env=self.venv, device=self.model.device)
        self._fresh = False

    def close(self) -> None:
        self.venv.close()


@contextmanager
def pickled_module_names() -> Iterator[None]:
    """Within the block, each name of :data:`PICKLED_MODULES` imports the module that defines the classes."""
    added = []
    for name, target in PICKLED_MODULES.items():
        if name not in sys.modules:
            sys.modules[name] = importlib.import_module(target)
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def load_model(algo_class: type[BaseAlgorithm], path: Path | str, **kwargs: Any) -> BaseAlgorithm:
    """``algo_class.load(path, **kwargs)``, with the module names of :data:`PICKLED_MODULES` resolved."""
    with pickled_module_names():
        return algo_class.load(path, **kwargs)


def vecnormalize_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics of a saved model live."""
    return model_path.with_name(model_path.stem + ".vecnormalize.pkl")


def unsupported_action_space(algo_class: type, action_space: spaces.Space, reason: str) -> UnsupportedActionSpaceError:
    """The error for an algorithm that refused the env's action space (SB3 asserts it in the constructor)."""
    return UnsupportedActionSpaceError(
        f"{algo_class.__name__} cannot handle the env's action space {action_space}: {reason}. A glimpse env's "
        "action is MultiDiscrete([K*K, C]) (a cell and a class at every step); use ppo, a2c, recurrent_ppo or "
        "one of our agents."
    )


class SB3Policy(Policy):
    """:class:`~agents.algorithms.policy.Policy` over an SB3 model (recurrent policies keep their LSTM state)."""

    def __init__(self, model: BaseAlgorithm, obs_normalizer: VecNormalize | None = None) -> None:
        self.model = model
        self.obs_normalizer = obs_normalizer
        self.recurrent = hasattr(model.policy, "lstm_actor")
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None
        self._starts: torch.Tensor | None = None

    def reset(self, n: int) -> None:
        if self.recurrent:
            shape = self.model.policy.lstm_hidden_state_shape  # (layers, 1, H)
            zeros = torch.zeros(shape[0], n, shape[2], device=self.model.device)
            self._state = (zeros, zeros.clone())
            self._starts = torch.ones(n, device=self.model.device)

    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], deterministic: bool = True, core_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer.normalize_obs(obs)
        policy = self.model.policy
        policy.set_training_mode(False)
        obs_t, _ = policy.obs_to_tensor(obs)
        if self.recurrent:
            if self._state is None or self._starts is None:
                raise RuntimeError("call reset(n) before act()")
            dist, self._state = policy.get_distribution(obs_t, self._state, self._starts)
            self._starts = torch.zeros_like(self._starts)
        else:
            dist = policy.get_distribution(obs_t)
        actions = dist.get_actions(deterministic=deterministic).cpu().numpy().astype(np.int64)
        probs = dist.distribution[1].probs.cpu().numpy()  # MultiCategorical: [cell, class]
        return actions, probs
