"""Shared test settings: tiny synthetic envs, small networks, and a stand-in for the training session.

Every test that trains or builds an env imports its settings from here, so a tiny env means the same thing
everywhere; a test that needs another size overrides the one key it needs, in plain sight.
"""

from __future__ import annotations

from typing import Any

import envs
from agents.training.hyperparams import deep_merge, load_hyperparams
from agents.training.registry import ALGORITHMS, resolve_algorithm

ENV = "SyntheticGlimpse-v0"
#: A tiny synthetic env: 3 classes, 16-d cells, 5 frames, 9 train and 6 test clips.
TINY_ENV: dict[str, Any] = {
    "num_classes": 3, "feature_dim": 16, "frames": 5, "train_clips_per_class": 3, "test_clips_per_class": 2,
}
#: The same as train_agent.py's ``--env-kwargs``.
TINY = [f"{key}={value}" for key, value in TINY_ENV.items()]
SMALL_NET = {"network": {"embed_dim": 16, "hidden_size": 16, "num_layers": 1, "class_hidden": 16}}
SB3_SMALL = {"n_steps": 40, "batch_size": 40, "n_epochs": 1,
             "policy_kwargs": {"features_extractor_kwargs": {"glimpse_dim": 16, "cell_dim": 4}}}
#: Hyperparameter overrides per --algo that make every algorithm train a few hundred steps in seconds.
OVERRIDES = {
    **{name: SMALL_NET for name, spec in ALGORITHMS.items() if not spec.is_sb3},
    "ppo": SB3_SMALL,
    "recurrent_ppo": {**SB3_SMALL, "policy_kwargs": {**SB3_SMALL["policy_kwargs"], "lstm_hidden_size": 16}},
    "a2c": {"n_steps": 10, "policy_kwargs": SB3_SMALL["policy_kwargs"]},
    "sb3_contrib:TRPO": {"n_steps": 40, "batch_size": 40, "policy_kwargs": SB3_SMALL["policy_kwargs"]},
}


class FakeSession:
    """What an algorithm's ``learn`` talks to, without logging, evaluation or checkpoints: it records the
    env steps and metrics of every iteration, and asks to stop after ``stop_after`` iterations (None: never)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.steps: list[int] = []
        self.metrics: dict[str, float] = {}

    @property
    def stop_requested(self) -> bool:
        return self.stop_after is not None and len(self.steps) >= self.stop_after

    def on_iteration(self, num_timesteps: int, metrics: dict[str, float]) -> None:
        self.steps.append(num_timesteps)
        self.metrics = metrics

    def log(self, step: int, scalars: dict[str, float]) -> None:  # the SB3 algorithms forward their records here
        pass


def build_agent(algo: str, env_kwargs: dict[str, Any], env_id: str = ENV, **overrides: Any) -> Any:
    """``algo`` on ``env_id`` with its shipped hyperparameters updated by ``overrides``, checked as
    train_agent.py checks them, on the CPU with seed 0."""
    spec = resolve_algorithm(algo)
    params = deep_merge(load_hyperparams(spec.hyperparams_file, env_id, envs.ENV_IDS), overrides)
    spec.check_hyperparams(params, "test")
    return spec.build(env_id, env_kwargs, params, n_envs=params["n_envs"], seed=0, device="cpu")
