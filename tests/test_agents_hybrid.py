"""The hybrid recurrent actor-critic (`lstm_ppo` with `class_loss: cross_entropy`) and the rule that
evaluation never reads labels."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from agents.envutil import make_vector_env
from agents.evaluation import run_sweep
from agents.hyperparams import deep_merge, load_hyperparams
from agents.registry import resolve_algorithm

torch.set_num_threads(1)

ENV = "SyntheticGlimpse-v0"
TINY = {"num_classes": 3, "feature_dim": 16, "frames": 5, "train_clips_per_class": 4, "test_clips_per_class": 4}
SMALL = {"network": {"embed_dim": 16, "hidden_size": 16, "num_layers": 1, "class_hidden": 16}, "n_envs": 8}


class _Session:
    stop_requested = False

    def on_iteration(self, num_timesteps: int, metrics: dict[str, float]) -> None:
        self.metrics = metrics


def build(algo: str, **overrides: Any) -> Any:
    spec = resolve_algorithm(algo)
    params = deep_merge(load_hyperparams(spec.hyperparams_file, ENV, envs.ENV_IDS), deep_merge(SMALL, overrides))
    spec.check_hyperparams(params, "test")
    return spec.build(ENV, TINY, params, n_envs=params["n_envs"], seed=0, device="cpu")


class ScrambledLabels(gym.vector.VectorWrapper):
    """Reports a wrong label in every info (what a policy must never see)."""

    def _scramble(self, info: dict) -> dict:
        info = dict(info)
        info["label"] = (np.asarray(info["label"]) + 1) % TINY["num_classes"]
        return info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        return obs, self._scramble(info)

    def step(self, actions: Any) -> tuple[Any, ...]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, reward, terminated, truncated, self._scramble(info)


@pytest.mark.parametrize("algo", ["lstm_ppo", "reinforce"])
def test_evaluation_never_reads_labels(algo: str) -> None:
    agent = build(algo)
    agent.learn(3 * 8 * 5, _Session())
    plain = make_vector_env(ENV, {**TINY, "subset": "test"}, 5)
    scrambled = ScrambledLabels(make_vector_env(ENV, {**TINY, "subset": "test"}, 5))
    clips = np.arange(plain.unwrapped.num_clips)
    a = run_sweep(plain, agent.policy(), clips)
    b = run_sweep(scrambled, agent.policy(), clips)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.class_prob_sums, b.class_prob_sums)
    np.testing.assert_array_equal(a.locations, b.locations)
    options = {"video_index": np.arange(5)}
    scrambled_labels = scrambled.reset(seed=0, options=options)[1]["label"]
    assert (scrambled_labels != plain.reset(seed=0, options=options)[1]["label"]).all()
    agent.close()


def test_hybrid_takes_the_class_head_argmax_and_learns_it_by_cross_entropy() -> None:
    agent = build("lstm_ppo")
    assert agent.hybrid and not agent.sample_class
    batch = agent.collect()
    np.testing.assert_array_equal(batch.actions[..., 1].numpy(), batch.class_probs.argmax(-1).numpy())
    session = _Session()
    agent.learn(8 * 5, session)
    assert session.metrics["train/cross_entropy"] > 0
    assert "train/class_entropy" in session.metrics and "train/grad_norm/class" in session.metrics
    agent.close()


def test_reward_only_variant_samples_the_class() -> None:
    agent = build("lstm_ppo", class_loss="none", ent_coef=0.0)
    assert not agent.hybrid and agent.sample_class
    batch = agent.collect()
    assert (batch.actions[..., 1].numpy() != batch.class_probs.argmax(-1).numpy()).any()
    session = _Session()
    agent.learn(8 * 5, session)
    assert "train/cross_entropy" not in session.metrics
    agent.close()


def test_hybrid_update_lowers_the_class_loss_on_its_batch() -> None:
    agent = build("lstm_ppo", learning_rate=0.01, n_epochs=1, n_minibatches=1)
    batch = agent.collect()
    agent.network.train()
    first = agent.update(batch)["cross_entropy"]
    for _ in range(5):
        last = agent.update(batch)["cross_entropy"]
    assert last < first - 0.05
    agent.close()
