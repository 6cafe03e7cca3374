"""Learning tests with fixed seeds on easy synthetic settings (4 classes, 64-d features, 8 frames, one
distractor; and a 5-class, 64-d setting with few clips, as a new user might try): the agents must learn, and
attention must matter."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from train_fixtures import ENV, FakeSession, build_agent

import envs
from agents.evaluation import EvalResult, evaluate_policy
from agents.training.envutil import make_vector_env
from agents.training.hyperparams import deep_merge, load_hyperparams
from agents.training.registry import resolve_algorithm

pytestmark = pytest.mark.slow  # trainings of tens of thousands of steps

torch.set_num_threads(1)

EASY = {"num_classes": 4, "feature_dim": 64, "frames": 8, "num_distractors": 1,
        "train_clips_per_class": 30, "test_clips_per_class": 25}
CHANCE = 1 / EASY["num_classes"]
SMALL = {"network": {"embed_dim": 32, "hidden_size": 32, "class_hidden": 32}}


def train_and_evaluate(algo: str, steps: int, env_kwargs: dict[str, Any] | None = None, **overrides: Any) -> EvalResult:
    env_kwargs = EASY if env_kwargs is None else env_kwargs
    agent = build_agent(algo, env_kwargs, **deep_merge(SMALL, overrides))
    agent.learn(steps, FakeSession())
    test = make_vector_env(ENV, {**env_kwargs, "subset": "test"}, 50)
    result = evaluate_policy(agent.policy(), test)
    agent.close()
    test.close()
    return result


@pytest.fixture(scope="module")
def random_focus() -> float:
    """Focus accuracy of glimpses at random cells (the share of core cells, about 4 %)."""
    return train_and_evaluate("random", 0).focus_accuracy


def test_reinforce_learns_to_classify_and_to_look_at_the_core(random_focus: float) -> None:
    # Here the class head learns within a few updates, so the location head need not wait for it.
    fast = {"n_envs": 32, "location_lr_scale": 1.0}
    untrained = train_and_evaluate("reinforce", 0, **fast)
    result = train_and_evaluate("reinforce", 100_000, learning_rate=0.002, **fast)
    assert result.accuracy >= 2.5 * CHANCE
    assert result.focus_accuracy >= 4 * random_focus
    # more than the saliency prior gives an untrained policy: the glimpses were learned
    assert result.focus_accuracy >= untrained.focus_accuracy + 0.04


def test_reinforce_finds_the_core_from_the_periphery_in_glimpse_mode(random_focus: float) -> None:
    """Glimpse mode reads one cell and the periphery (k = 5 values per cell at D = 64), never the cube; the
    periphery is what lets the policy find the core: the same agent trained blind (periphery_dim=0) does not."""
    glimpse = {**EASY, "observation_mode": "glimpse"}
    fast = {"n_envs": 32, "location_lr_scale": 1.0, "learning_rate": 0.002}
    result = train_and_evaluate("reinforce", 100_000, glimpse, **fast)
    blind = train_and_evaluate("reinforce", 100_000, {**glimpse, "periphery_dim": 0}, **fast)
    assert result.accuracy >= 2 * CHANCE
    assert result.focus_accuracy >= 4 * random_focus
    assert result.focus_accuracy >= blind.focus_accuracy + 0.2
    assert result.accuracy >= blind.accuracy + 0.2


def test_reinforce_learns_the_five_class_64_dim_setting() -> None:
    """5 classes, 64-d, 40 / 20 clips per class: learnable only with a normalised baseline and a synthetic
    signal-to-noise ratio independent of D (docs/design.md); shipped hyperparameters but a small network."""
    setting = {"num_classes": 5, "feature_dim": 64, "train_clips_per_class": 40, "test_clips_per_class": 20}
    result = train_and_evaluate("reinforce", 60_000, env_kwargs=setting)
    assert result.accuracy >= 0.6  # chance 0.2


def test_hybrid_lstm_ppo_learns_where_to_look_from_scratch(random_focus: float) -> None:
    """No saliency prior: the untrained policy looks at random, so every bit of focus is learned by PPO."""
    blind = {"n_envs": 64, "learning_rate": 0.002, "network": {"saliency_prior": 0.0}}
    untrained = train_and_evaluate("lstm_ppo", 0, **blind)
    result = train_and_evaluate("lstm_ppo", 100_000, **blind)
    assert untrained.focus_accuracy <= 2 * random_focus
    assert result.focus_accuracy >= 4 * random_focus
    assert result.accuracy >= 1.8 * CHANCE


def test_oracle_glimpses_beat_mean_pooling() -> None:
    oracle = train_and_evaluate("oracle", 40_000)
    mean_pool = train_and_evaluate("mean_pool", 40_000)
    assert oracle.accuracy >= 0.9
    assert oracle.accuracy >= mean_pool.accuracy + 0.2


def test_sb3_ppo_learns_the_easy_rung_from_the_reward_alone() -> None:
    """The ladder's easy rung with PPO's shipped hyperparameters (agents/training/hyperparams/ppo.yml), a small
    budget."""
    rung = next(iter(envs.LADDER))
    spec = resolve_algorithm("ppo")
    params = load_hyperparams(spec.hyperparams_file, rung, envs.ENV_IDS)
    agent = spec.build(rung, {}, params, n_envs=params["n_envs"], seed=0, device="cpu")
    agent.learn(40_000, FakeSession())
    test = make_vector_env(rung, {"subset": "test"}, 60)
    result = evaluate_policy(agent.policy(), test)
    agent.close()
    test.close()
    chance = 1 / envs.ladder.rung_config(rung).num_classes
    assert result.n_clips == 120
    assert result.accuracy >= 2 * chance, result.accuracy


def test_reinforce_learns_when_to_stop_under_a_frame_cost() -> None:
    """With ``early_exit`` and a cost per frame watched, the agent stops before the clip's end once it is sure
    and still classifies: it watched 3.9 of 8 frames at 61 % (chance 25 %) when measured."""
    setting = {**EASY, "early_exit": True, "frame_cost": 0.1}
    result = train_and_evaluate("reinforce", 100_000, setting, n_envs=32, location_lr_scale=1.0, learning_rate=0.002)
    assert result.accuracy >= 2 * CHANCE
    assert 1.5 <= result.frames_watched <= 0.8 * EASY["frames"]
