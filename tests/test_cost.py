"""The cost account of an evaluated clip (agents/cost.py): values and bytes read, the CNN per frame."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.cost import cost_metrics, reads_periphery, values_read
from agents.network import GlimpseNetwork, NetworkConfig
from agents.policy import NetworkPolicy
from envs.dynamics import EpisodeRules

RULES = EpisodeRules(frames=3, grid=7, feature_dim=1024, num_classes=5, observation_mode="glimpse", periphery_dim=64,
                     glimpses_per_frame=2)


def test_values_read_count_cells_periphery_and_cube_once_per_frame() -> None:
    # two clips, 3 frames x 2 glimpses; the second looks twice at the same cell in frame 0
    locations = np.array([[0, 1, 2, 3, 4, 5], [7, 7, 8, 9, 10, 11]])
    blind = values_read(locations, RULES, cube=False, periphery=False)
    np.testing.assert_array_equal(blind, [6 * 1024, 5 * 1024])
    seen = values_read(locations, RULES, cube=False, periphery=True)
    np.testing.assert_array_equal(seen - blind, [3 * 49 * 64] * 2)
    np.testing.assert_array_equal(values_read(locations, RULES, cube=True, periphery=False), [3 * 49 * 1024] * 2)


def test_cost_metrics_charge_the_whole_cnn_per_frame_for_every_policy() -> None:
    locations = np.zeros((1, 6), dtype=int)
    glimpse = cost_metrics(locations, RULES, cube=False, periphery=True, cnn_flops_per_frame=3e9)
    cube = cost_metrics(locations, RULES, cube=True, periphery=False, cnn_flops_per_frame=3e9)
    assert glimpse["cnn_flops_per_clip"] == cube["cnn_flops_per_clip"] == 3 * 3e9
    assert glimpse["store_bytes_read_per_clip"] == 2 * glimpse["feature_values_read_per_clip"]  # float16
    assert cube["share_of_cube_read"] == 1.0
    # one cell (1024) and the periphery (49 x 64) per frame: 8.3 % of the cube, within the tenth
    assert glimpse["share_of_cube_read"] == pytest.approx((1024 + 49 * 64) / (49 * 1024))


@pytest.mark.parametrize("periphery_dim", [4, 0])
def test_reads_periphery_follows_the_network(periphery_dim: int) -> None:
    env = gym.make_vec("SyntheticGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point",
                       observation_mode="glimpse", num_classes=3, feature_dim=64, frames=2,
                       train_clips_per_class=1, test_clips_per_class=1)
    net = GlimpseNetwork(NetworkConfig(feature_dim=64, num_classes=3, use_cube=False, periphery_dim=periphery_dim,
                                       embed_dim=8, hidden_size=8, num_layers=1, class_hidden=8))
    assert reads_periphery(NetworkPolicy(net, "learned"), env) is bool(periphery_dim)
    blind = gym.make_vec("SyntheticGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point",
                         observation_mode="glimpse", periphery_dim=0, num_classes=3, feature_dim=64, frames=2,
                         train_clips_per_class=1, test_clips_per_class=1)
    assert not reads_periphery(object(), blind)  # nothing to read where the env serves no periphery
    assert reads_periphery(object(), env)  # any other policy reads every entry it is given
