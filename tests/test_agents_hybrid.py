"""The hybrid recurrent actor-critic (`lstm_ppo` with `class_loss: cross_entropy`) and the rule that
evaluation never reads labels."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from train_fixtures import ENV, SMALL_NET, FakeSession, build_agent
from train_fixtures import TINY_ENV as TINY

from agents.evaluation import play_clips
from agents.training.envutil import make_vector_env
from agents.training.hyperparams import deep_merge

torch.set_num_threads(1)


def build(algo: str, **overrides: Any) -> Any:
    return build_agent(algo, TINY, **deep_merge({**SMALL_NET, "n_envs": 8}, overrides))


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
    agent.learn(3 * 8 * 5, FakeSession())
    plain = make_vector_env(ENV, {**TINY, "subset": "test"}, 5)
    scrambled = ScrambledLabels(make_vector_env(ENV, {**TINY, "subset": "test"}, 5))
    clips = np.arange(plain.unwrapped.num_clips)
    a = play_clips(plain, agent.policy(), clips)
    b = play_clips(scrambled, agent.policy(), clips)
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
    session = FakeSession()
    agent.learn(8 * 5, session)
    assert session.metrics["train/cross_entropy"] > 0
    assert "train/class_entropy" in session.metrics and "train/grad_norm/class" in session.metrics
    agent.close()


def test_reward_only_variant_samples_the_class() -> None:
    agent = build("lstm_ppo", class_loss="none", ent_coef=0.0)
    assert not agent.hybrid and agent.sample_class
    batch = agent.collect()
    assert (batch.actions[..., 1].numpy() != batch.class_probs.argmax(-1).numpy()).any()
    session = FakeSession()
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
