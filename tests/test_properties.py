"""Property test: random env arguments and random actions keep the contract."""

from __future__ import annotations

import gymnasium as gym
from hypothesis import given, settings
from hypothesis import strategies as st

env_arguments = st.fixed_dictionaries(
    {
        "observation_mode": st.sampled_from(["cube", "glimpse"]),
        "observation_dtype": st.sampled_from(["float32", "float16"]),
        "glimpses_per_frame": st.integers(1, 3),
        "glimpse_budget": st.one_of(st.none(), st.integers(1, 12)),
        "reward_mode": st.sampled_from(["paper", "final", "dense"]),
        "eta": st.floats(0, 1),
        "initial_location": st.sampled_from(["center", "random"]),
        "frames": st.integers(1, 6),
        "num_classes": st.integers(2, 6),
        "num_distractors": st.integers(0, 4),
        "drift": st.floats(0, 1),
    }
)


@settings(max_examples=40, deadline=None)
@given(kwargs=env_arguments, seed=st.integers(0, 2**16), action_seed=st.integers(0, 2**16))
def test_random_episodes_keep_the_contract(kwargs: dict, seed: int, action_seed: int) -> None:
    env = gym.make("SyntheticGlimpse-v0", feature_dim=8, train_clips_per_class=2, **kwargs)
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    full = kwargs["frames"] * kwargs["glimpses_per_frame"]
    expected_length = full if kwargs["glimpse_budget"] is None else min(full, kwargs["glimpse_budget"])
    length, done = 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        length += 1
        assert env.observation_space.contains(obs)
        assert not truncated
        done = terminated
        if not done and kwargs["reward_mode"] != "dense":
            assert reward == 0.0
    assert length == expected_length
    assert info["n_true_pos"] + info["n_false_pos"] == expected_length
    assert isinstance(info["is_success"], bool)
