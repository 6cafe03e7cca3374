"""Building the envs an algorithm trains and is evaluated on, from an env id and plain keyword arguments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np


class EnvBuildError(ValueError):
    """The env could not be built from the given id and arguments (the env's own message included)."""


class IncompatibleEnvError(ValueError):
    """An agent cannot run on this env (e.g. it needs the cube but the env leaves it out)."""


def register_envs() -> None:
    """Import the ``envs`` package, which registers every glimpse env id with Gymnasium."""
    import envs  # noqa: F401


def make_vector_env(env_id: str, env_kwargs: dict[str, Any], num_envs: int) -> Any:
    """The env's batched numpy vector implementation with ``num_envs`` sub-envs."""
    register_envs()
    with env_errors(env_id, env_kwargs):
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)


@contextmanager
def env_errors(env_id: str, env_kwargs: dict[str, Any]) -> Iterator[None]:
    """Turn any failure to construct an env into an :class:`EnvBuildError` naming the env and arguments."""
    if env_id not in gym.registry:
        import envs

        raise EnvBuildError(f"unknown env {env_id!r}; registered glimpse envs: {', '.join(envs.ENV_IDS)}")
    try:
        yield
    except Exception as exc:
        raise EnvBuildError(f"cannot build {env_id} with env kwargs {env_kwargs}: {exc}") from exc


def eval_env_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Same env, test subset."""
    return {**env_kwargs, "subset": "test"}


@dataclass(frozen=True)
class EnvShape:
    """What a network needs to know about an env."""

    feature_dim: int
    num_classes: int
    num_cells: int
    has_cube: bool
    #: k of the ``periphery`` observation (0: the env has none).
    periphery_dim: int
    glimpses_per_frame: int
    #: whether actions have a third component, ``stop`` (the env's ``early_exit``)
    early_exit: bool = False

    @classmethod
    def of(cls, env: Any) -> EnvShape:
        """From a (vector) env's single spaces and its episode rules (what the spaces do not show, such as
        ``glimpses_per_frame``, which a registered id may set); checks that it is a glimpse env."""
        obs_space = getattr(env, "single_observation_space", env.observation_space)
        act_space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(obs_space, gym.spaces.Dict) or "glimpse" not in obs_space.spaces:
            raise ValueError(f"expected a glimpse env (Dict observation with 'glimpse'), got {obs_space}")
        if not isinstance(act_space, gym.spaces.MultiDiscrete) or act_space.shape not in ((2,), (3,)):
            raise ValueError(f"expected MultiDiscrete([K*K, C]) or, with early_exit, MultiDiscrete([K*K, C, 2]) "
                             f"actions, got {act_space}")
        nvec = np.asarray(act_space.nvec)
        return cls(
            feature_dim=int(obs_space["glimpse"].shape[0]),
            num_classes=int(nvec[1]),
            num_cells=int(nvec[0]),
            has_cube="cube" in obs_space.spaces,
            periphery_dim=int(obs_space["periphery"].shape[-1]) if "periphery" in obs_space.spaces else 0,
            glimpses_per_frame=int(getattr(getattr(env.unwrapped, "rules", None), "glimpses_per_frame", 1)),
            early_exit=act_space.shape == (3,),
        )
