"""The batched vector env equals SyncVectorEnv over the single env, step for step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_env import _equal

from envs import ENV_IDS, GlimpseVectorEnv


def _assert_same(a, b, where: str) -> None:
    assert _equal(a, b), f"batched and SyncVectorEnv differ at {where}: {a!r} vs {b!r}"


VIEWS = {
    "cube": {"observation_mode": "cube"},
    "glimpse": {"observation_mode": "glimpse"},
    "glimpse-blind": {"observation_mode": "glimpse", "periphery_dim": 0},
    "glimpse-motion": {"observation_mode": "glimpse", "periphery_motion": True},
}


@pytest.mark.parametrize("mode", list(VIEWS))
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_batched_equals_sync_including_autoreset(env_id: str, mode: str, env_kwargs: dict) -> None:
    view = VIEWS[mode]
    kw = dict(env_kwargs[env_id], **view, initial_location="random", glimpses_per_frame=2, glimpse_budget=5)
    n = 3
    batched = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **kw)
    assert isinstance(batched, GlimpseVectorEnv)
    assert batched.observation_space == sync.observation_space
    assert batched.action_space == sync.action_space
    _assert_same(batched.reset(seed=7), sync.reset(seed=7), "reset")
    rng = np.random.default_rng(0)
    classes = batched.single_action_space.nvec[1]
    ends = 0
    for t in range(14):  # two episodes of 5 steps, their autoreset steps, and more
        actions = np.stack([rng.integers(0, 49, n), rng.integers(0, classes, n)], axis=1)
        out_b, out_s = batched.step(actions), sync.step(actions)
        _assert_same(out_b, out_s, f"step {t}")
        ends += int(out_b[2].any())
    assert ends == 2
    _assert_same(batched.reset(seed=9, options={"video_index": 1}), sync.reset(seed=9, options={"video_index": 1}),
                 "reset with video_index")


def test_batched_equals_sync_with_early_exit(env_kwargs: dict) -> None:
    kw = dict(env_kwargs["SyntheticGlimpse-v0"], observation_mode="glimpse", early_exit=True, frame_cost=0.1)
    n = 4
    batched = gym.make_vec("SyntheticGlimpse-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec("SyntheticGlimpse-v0", num_envs=n, vectorization_mode="sync", **kw)
    assert batched.action_space == sync.action_space
    _assert_same(batched.reset(seed=3), sync.reset(seed=3), "reset")
    rng = np.random.default_rng(1)
    classes = batched.single_action_space.nvec[1]
    stops = 0
    for t in range(20):  # sub-envs stop at different steps and autoreset on their own
        actions = np.stack([rng.integers(0, 49, n), rng.integers(0, classes, n), rng.random(n) < 0.3], axis=1)
        out_b, out_s = batched.step(actions), sync.step(actions)
        _assert_same(out_b, out_s, f"step {t}")
        stops += int(out_b[2].sum())
    assert stops > n


def test_reset_mask_resets_only_chosen_envs() -> None:
    kw = dict(num_classes=5, feature_dim=16, frames=4)
    batched = gym.make_vec("SyntheticGlimpse-v0", num_envs=3, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec("SyntheticGlimpse-v0", num_envs=3, vectorization_mode="sync", **kw)
    _assert_same(batched.reset(seed=1), sync.reset(seed=1), "reset")
    act = np.zeros((3, 2), dtype=np.int64)
    _assert_same(batched.step(act), sync.step(act), "step")
    mask = np.array([True, False, True])
    _assert_same(batched.reset(options={"reset_mask": mask}), sync.reset(options={"reset_mask": mask.copy()}),
                 "masked reset")


def test_lockstep_episodes_of_fixed_length() -> None:
    vec = gym.make_vec("SyntheticGlimpse-v0", num_envs=8, vectorization_mode="vector_entry_point",
                       num_classes=4, feature_dim=8, frames=5, glimpses_per_frame=2)
    vec.reset(seed=0)
    act = np.zeros((8, 2), dtype=np.int64)
    terminations = [vec.step(act)[2] for _ in range(22)]
    assert [bool(t.all()) for t in terminations] == [i in (9, 20) for i in range(22)]
    assert not any(t.any() and not t.all() for t in terminations)


def test_vector_next_core_mask_matches_single_env() -> None:
    kw = dict(num_classes=5, feature_dim=16, frames=6)
    vec = gym.make_vec("SyntheticGlimpse-v0", num_envs=2, vectorization_mode="vector_entry_point", **kw)
    single = gym.make("SyntheticGlimpse-v0", **kw)
    vec.reset(seed=4)
    single.reset(seed=4)
    np.testing.assert_array_equal(vec.unwrapped.next_core_mask()[0], single.unwrapped.next_core_mask())
    assert vec.unwrapped.next_core_mask().shape == (2, 49)


def test_vector_rejects_bad_actions_with_a_clear_message() -> None:
    vec = gym.make_vec("SyntheticGlimpse-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       num_classes=3, feature_dim=8, frames=3)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, 2), dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        vec.step(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="outside the action space"):
        vec.step(np.array([[0, 0], [49, 0]]))
