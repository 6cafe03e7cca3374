"""The algorithm registry: the single source of truth for ``--algo`` names.

Each name maps to an :class:`AlgorithmSpec`: the class that trains it and the yaml that holds its
hyperparameter defaults (``agents/training/hyperparams/<algo>.yml``; the five supervised baselines share
``supervised.yml``). Besides the names below, any SB3-compatible class
can be named as ``module:Class`` (its defaults come from ``sb3_class.yml``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any

from agents.algorithms.base import Algorithm, EpisodeAlgorithm, EpisodeHyperparams
from agents.algorithms.lstm_ppo import LstmPPO
from agents.algorithms.network import NetworkConfig
from agents.algorithms.reinforce import Reinforce
from agents.algorithms.supervised import CenterGlimpse, MeanPool, OracleGlimpse, RandomGlimpse, SoftAttention
from agents.training.hyperparams import HYPERPARAMS_DIR, HyperparamError, check_keys, check_types

SB3_CLASS_FILE = "sb3_class.yml"
#: The five supervised baselines share one file (they differ only in where they look).
SUPERVISED_FILE = "supervised.yml"


class UnknownAlgorithmError(ValueError):
    """``--algo`` names nothing we know."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """One ``--algo`` entry: ``target`` is an :class:`EpisodeAlgorithm` subclass (ours), or an SB3 class or its
    ``"module:Class"`` path, imported when first used (SB3 and sb3-contrib load only when an SB3 algorithm is
    named)."""

    name: str
    target: type | str
    hyperparams_file: str = ""

    def __post_init__(self) -> None:
        # agents/training/hyperparams/<name>.yml when there is one (a user may add one for a baseline), else the
        # shared file
        own = f"{self.name}.yml"
        if not self.hyperparams_file or (HYPERPARAMS_DIR / own).is_file():
            object.__setattr__(self, "hyperparams_file", own)

    @property
    def cls(self) -> type:
        """The algorithm class (importing its module on first use)."""
        if isinstance(self.target, type):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def is_sb3(self) -> bool:
        return not (isinstance(self.target, type) and issubclass(self.target, EpisodeAlgorithm))

    def allowed_keys(self) -> set[str]:
        """Top-level hyperparameter keys."""
        if self.is_sb3:
            from agents.algorithms.sb3 import OWN_KEYS, constructor_keys

            return constructor_keys(self.cls) | set(OWN_KEYS)
        return {f.name for f in fields(self.cls.hyperparams_class)}

    def check_hyperparams(self, params: dict[str, Any], where: str) -> None:
        """Raise :class:`HyperparamError` for unknown keys (also inside ``network``) or missing ones."""
        check_keys(params, self.allowed_keys(), where)
        if self.is_sb3:
            return
        network = params.get("network") or {}
        if not isinstance(network, dict):
            raise HyperparamError(f"'network' in {where} must be a mapping")
        check_keys(network, EpisodeHyperparams.NETWORK_KEYS, f"{where} (network)")
        check_types(params, self.cls.hyperparams_class, where)
        check_types(network, NetworkConfig, f"{where} (network)")
        missing = sorted(self.allowed_keys() - set(params))
        if missing:
            raise HyperparamError(f"{where} lacks hyperparameter(s) {', '.join(missing)}")

    def build(
        self, env_id: str, env_kwargs: dict[str, Any], params: dict[str, Any], *, n_envs: int, seed: int, device: str
    ) -> Algorithm:
        if self.is_sb3:
            from agents.algorithms.sb3 import SB3Algorithm

            return SB3Algorithm(self.cls, env_id, env_kwargs, params, n_envs=n_envs, seed=seed, device=device)
        assert issubclass(self.cls, EpisodeAlgorithm)
        hp = self.cls.hyperparams_class(**{**params, "network": dict(params.get("network") or {})})
        return self.cls(env_id, env_kwargs, hp, n_envs=n_envs, seed=seed, device=device)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec("reinforce", Reinforce),
        AlgorithmSpec("lstm_ppo", LstmPPO),
        AlgorithmSpec("soft_attention", SoftAttention, SUPERVISED_FILE),
        AlgorithmSpec("mean_pool", MeanPool, SUPERVISED_FILE),
        AlgorithmSpec("random", RandomGlimpse, SUPERVISED_FILE),
        AlgorithmSpec("center", CenterGlimpse, SUPERVISED_FILE),
        AlgorithmSpec("oracle", OracleGlimpse, SUPERVISED_FILE),
        AlgorithmSpec("ppo", "stable_baselines3:PPO"),
        AlgorithmSpec("a2c", "stable_baselines3:A2C"),
        AlgorithmSpec("recurrent_ppo", "sb3_contrib:RecurrentPPO"),
    )
}


def known_algorithms_text() -> str:
    return ", ".join(ALGORITHMS) + ", or any SB3-compatible class as module:Class"


def resolve_algorithm(name: str) -> AlgorithmSpec:
    """The spec of a registered name or of a ``module:Class`` SB3-compatible class."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if ":" in name:
        from stable_baselines3.common.base_class import BaseAlgorithm

        from agents.algorithms.sb3 import import_object

        try:
            cls = import_object(name)
        except ValueError as exc:
            raise UnknownAlgorithmError(f"cannot load algorithm class {name!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseAlgorithm)):
            raise UnknownAlgorithmError(
                f"{name!r} is not an SB3-compatible algorithm class (a subclass of "
                "stable_baselines3.common.base_class.BaseAlgorithm)"
            )
        return AlgorithmSpec(name, cls, SB3_CLASS_FILE)
    raise UnknownAlgorithmError(f"unknown algorithm {name!r}; known algorithms: {known_algorithms_text()}")
