"""Tiny settings that make every algorithm train a few hundred steps through train_agent.py in seconds."""

from __future__ import annotations

from agents.registry import ALGORITHMS

TINY = ["num_classes=3", "feature_dim=16", "frames=5", "train_clips_per_class=3", "test_clips_per_class=2"]
SMALL_NET = {"network": {"embed_dim": 16, "hidden_size": 16, "num_layers": 1, "class_hidden": 16}}
SB3_SMALL = {"n_steps": 40, "batch_size": 40, "n_epochs": 1,
             "policy_kwargs": {"features_extractor_kwargs": {"glimpse_dim": 16, "cell_dim": 4}}}
#: hyperparameter overrides per --algo
OVERRIDES = {
    **{name: SMALL_NET for name, spec in ALGORITHMS.items() if not spec.is_sb3},
    "ppo": SB3_SMALL,
    "recurrent_ppo": {**SB3_SMALL, "policy_kwargs": {**SB3_SMALL["policy_kwargs"], "lstm_hidden_size": 16}},
    "a2c": {"n_steps": 10, "policy_kwargs": SB3_SMALL["policy_kwargs"]},
    "sb3_contrib:TRPO": {"n_steps": 40, "batch_size": 40, "policy_kwargs": SB3_SMALL["policy_kwargs"]},
}
