"""Paper eq. 7 and the reward modes, on hand-computed episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from train_fixtures import TINY_ENV

from envs.reward import paper_reward

KW = {**TINY_ENV, "num_classes": 4}  # four classes: clip i has label i % 4


def play(predictions: list[int] | str, video_index: int = 2, **kw) -> tuple[list[float], dict]:
    """Rewards of one episode on clip ``video_index`` (label = index % 4) predicting the given classes."""
    env = gym.make("SyntheticGlimpse-v0", **KW, **kw)
    _, info = env.reset(seed=0, options={"video_index": video_index})
    label = info["label"]
    rewards, done, step = [], False, 0
    while not done:
        guess = label if predictions == "right" else (label + 1) % 4 if predictions == "wrong" else predictions[step]
        _, r, done, truncated, info = env.step(np.array([0, guess]))
        assert not truncated
        rewards.append(r)
        step += 1
    return rewards, info


def test_all_right_all_wrong_and_mixed() -> None:
    assert play("right")[0] == [0, 0, 0, 0, 2.5]  # 0.5 * 5 * 1
    assert play("wrong")[0] == [0, 0, 0, 0, -2.5]  # 0.5 * 5 * -1
    rewards, info = play([2, 2, 0, 1, 2])  # clip 2 has label 2: three right, two wrong
    assert rewards == [0, 0, 0, 0, 0.5 * 3 - 0.5 * 2]
    assert (info["n_true_pos"], info["n_false_pos"], info["is_success"]) == (3, 2, True)


@pytest.mark.parametrize(("eta", "expected"), [(0.0, -2.0), (1.0, 3.0), (0.25, 0.25 * 3 - 0.75 * 2)])
def test_eta_trades_true_against_false_positives(eta: float, expected: float) -> None:
    assert play([2, 2, 0, 1, 2], eta=eta)[0][-1] == pytest.approx(expected)


def test_custom_reward_values() -> None:
    rewards, _ = play([2, 2, 0, 1, 2], reward_positive=2.0, reward_negative=-0.5)
    assert rewards[-1] == pytest.approx(0.5 * 3 * 2.0 + 0.5 * 2 * -0.5)


def test_reward_modes_final_and_dense() -> None:
    final, _ = play([2, 2, 0, 1, 0], reward_mode="final")
    assert final == [0, 0, 0, 0, -0.5]  # only the last (wrong) prediction counts
    dense, _ = play([2, 2, 0, 1, 2], reward_mode="dense")
    assert dense == [0.5, 0.5, -0.5, -0.5, 0.5]
    assert sum(dense) == pytest.approx(play([2, 2, 0, 1, 2])[0][-1])


def test_multi_label_prediction_is_right_when_it_is_any_label(stores: dict) -> None:
    env = gym.make("ActivityNetGlimpse-v0", data_root=str(stores["activitynet"]), glimpse_budget=3)
    _, info = env.reset(options={"video_index": 1})  # v_b: labels 1 and 2
    assert info["video_id"] == "v_b"
    rewards = [env.step(np.array([0, c]))[1] for c in (1, 2, 0)]
    assert rewards == [0, 0, 0.5 * 2 - 0.5 * 1]


def test_budget_of_five_ends_after_exactly_five_glimpses() -> None:
    env = gym.make("SyntheticGlimpse-v0", glimpse_budget=5, **dict(KW, frames=30))
    env.reset(seed=0)
    ends = [env.step(np.array([0, 0]))[2] for _ in range(5)]
    assert ends == [False] * 4 + [True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))


def test_paper_reward_function_is_vectorised() -> None:
    np.testing.assert_allclose(paper_reward(np.array([3, 0]), np.array([2, 5]), 0.5, 1.0, -1.0), [0.5, -2.5])
