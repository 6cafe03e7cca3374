"""Hyperparameter files and the algorithm registry (agents/training/hyperparams.py, agents/training/registry.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import gymnasium as gym
import pytest
import yaml
from train_fixtures import TINY_ENV

import envs
from agents.algorithms.sb3 import FEATURE_KEYS, GlimpseExtractor
from agents.training.hyperparams import (
    HYPERPARAMS_DIR,
    HyperparamError,
    deep_merge,
    for_env,
    load_hyperparams,
    read_yaml,
)
from agents.training.registry import ALGORITHMS, UnknownAlgorithmError, resolve_algorithm


@pytest.mark.parametrize("algo", list(ALGORITHMS))
@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_shipped_defaults_are_complete_and_valid(algo: str, env_id: str) -> None:
    spec = ALGORITHMS[algo]
    params = load_hyperparams(spec.hyperparams_file, env_id, envs.ENV_IDS)
    spec.check_hyperparams(params, f"{algo}.yml")  # raises on unknown or missing keys
    assert params["n_envs"] >= 1 and params["n_timesteps"] > 0


def test_every_shipped_file_belongs_to_an_algorithm() -> None:
    used = {spec.hyperparams_file for spec in ALGORITHMS.values()} | {"sb3_class.yml", "zoo.yml"}
    assert {p.name for p in HYPERPARAMS_DIR.glob("*.yml")} == used


def test_env_entry_overrides_default_key_by_key() -> None:
    params = load_hyperparams("reinforce.yml", "SyntheticGlimpse-v0", envs.ENV_IDS)
    default = read_yaml(HYPERPARAMS_DIR / "reinforce.yml")["default"]
    assert params["network"]["hidden_size"] < default["network"]["hidden_size"]  # the env's entry
    assert params["network"]["saliency_prior"] == default["network"]["saliency_prior"]  # kept from default
    assert params["learning_rate"] == default["learning_rate"]


def test_user_file_flat_or_keyed(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yml"
    flat.write_text(yaml.safe_dump({"learning_rate": 0.5, "network": {"num_layers": 2}}))
    params = load_hyperparams("reinforce.yml", "SyntheticGlimpse-v0", envs.ENV_IDS, flat)
    assert params["learning_rate"] == 0.5 and params["network"]["num_layers"] == 2
    assert params["network"]["hidden_size"] == 128  # still the env's entry
    keyed = tmp_path / "keyed.yml"
    keyed.write_text(yaml.safe_dump({"default": {"learning_rate": 0.1}, "HMDB51Glimpse-v0": {"learning_rate": 0.2}}))
    assert load_hyperparams("reinforce.yml", "SyntheticGlimpse-v0", envs.ENV_IDS, keyed)["learning_rate"] == 0.1
    assert load_hyperparams("reinforce.yml", "HMDB51Glimpse-v0", envs.ENV_IDS, keyed)["learning_rate"] == 0.2


def test_deep_merge_does_not_touch_its_inputs() -> None:
    base = {"a": 1, "n": {"x": 1, "y": 2}}
    out = deep_merge(base, {"n": {"y": 3}, "b": None})
    assert out == {"a": 1, "n": {"x": 1, "y": 3}, "b": None} and base == {"a": 1, "n": {"x": 1, "y": 2}}


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(HyperparamError, match="does not exist"):
        read_yaml(tmp_path / "none.yml")
    (tmp_path / "list.yml").write_text("- 1\n- 2\n")
    with pytest.raises(HyperparamError, match="must hold a mapping"):
        read_yaml(tmp_path / "list.yml")


def test_missing_keys_are_named() -> None:
    spec = ALGORITHMS["reinforce"]
    params = load_hyperparams(spec.hyperparams_file, "SyntheticGlimpse-v0", envs.ENV_IDS)
    del params["reward_scale"]
    with pytest.raises(HyperparamError, match="lacks hyperparameter.s. reward_scale"):
        spec.check_hyperparams(params, "test")


def test_resolve_module_class_and_unknown_names() -> None:
    spec = resolve_algorithm("sb3_contrib:TRPO")
    assert spec.is_sb3 and spec.hyperparams_file == "sb3_class.yml" and "n_steps" in spec.allowed_keys()
    with pytest.raises(UnknownAlgorithmError, match="known algorithms: reinforce, lstm_ppo, soft_attention"):
        resolve_algorithm("dqn")
    with pytest.raises(UnknownAlgorithmError, match="not an SB3-compatible algorithm class"):
        resolve_algorithm("agents.algorithms.network:GlimpseNetwork")


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_zoo_config_names_a_dict_policy_and_our_extractor(env_id: str) -> None:
    entry = read_yaml(HYPERPARAMS_DIR / "zoo.yml")[env_id]
    assert entry["policy"] == "MultiInputPolicy"
    # rl_zoo3 evaluates these strings in its exp_manager module, which imports importlib
    kwargs = eval(entry["policy_kwargs"], {"importlib": importlib})
    assert kwargs["features_extractor_class"] is GlimpseExtractor
    assert eval(entry["normalize"], {})["norm_obs_keys"] == ["glimpse", "cube"]


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_zoo_config_is_the_same_experiment_as_train_agent_ppo(env_id: str) -> None:
    """rl_zoo3 PPO with zoo.yml and ``train_agent.py --algo ppo`` (ppo.yml): the same budget, constructor
    arguments, network and normalised observation entries."""
    zoo = read_yaml(HYPERPARAMS_DIR / "zoo.yml")[env_id]
    ours = load_hyperparams("ppo.yml", env_id, envs.ENV_IDS)
    own_keys = {"normalize", "eval_every", "policy_kwargs"}  # compared below (eval_every is ours only)
    assert {k: v for k, v in ours.items() if k not in own_keys} == {
        k: v for k, v in zoo.items() if k not in own_keys
    }
    kwargs = eval(zoo["policy_kwargs"], {"importlib": importlib})
    assert {k: v for k, v in kwargs.items() if k != "features_extractor_class"} == ours["policy_kwargs"]
    # ppo.yml's `normalize: true` normalises every feature entry of the observation
    # (agents.algorithms.sb3.FEATURE_KEYS);
    # zoo.yml names them for the default observation (cube mode)
    normalize = eval(zoo["normalize"], {})
    space = gym.make(envs.ladder.TOP_RUNG, **TINY_ENV).observation_space
    assert ours["normalize"] is True and normalize["norm_obs"] and not normalize["norm_reward"]
    assert normalize["norm_obs_keys"] == [k for k in FEATURE_KEYS if k in space.spaces]


def test_a_ladder_rung_inherits_the_top_rung_then_its_own_entry() -> None:
    """``default``, then the top rung's entry, then the rung's own, key by key (nested mappings too); the other
    env ids take ``default`` and their own entry only."""
    top, rung = envs.ladder.TOP_RUNG, "SyntheticGlimpse-Easy-v0"
    data = {
        "default": {"learning_rate": 1.0, "n_envs": 1, "network": {"hidden_size": 512, "dropout": 0.5}},
        top: {"learning_rate": 2.0, "network": {"hidden_size": 128}},
        rung: {"n_envs": 3, "network": {"dropout": 0.0}},
    }
    path = Path("test.yml")
    assert for_env(data, rung, path) == {"learning_rate": 2.0, "n_envs": 3, "network": {"hidden_size": 128,
                                                                                         "dropout": 0.0}}
    assert for_env(data, "SyntheticGlimpse-Medium-v0", path) == deep_merge(data["default"], data[top])
    assert for_env(data, "HMDB51Glimpse-v0", path) == data["default"]
    # the shipped files: a rung without its own network entry gets the top rung's small synthetic network
    ids = (rung, top, "HMDB51Glimpse-v0")
    easy, synthetic, hmdb = (load_hyperparams("reinforce.yml", env_id, envs.ENV_IDS) for env_id in ids)
    assert easy["network"] == synthetic["network"] != hmdb["network"]


def test_a_users_keyed_file_reaches_the_rungs_through_the_top_rung(tmp_path: Path) -> None:
    top = envs.ladder.TOP_RUNG
    user = tmp_path / "mine.yml"
    user.write_text(yaml.safe_dump({top: {"learning_rate": 0.123}}))
    for env_id in envs.LADDER:
        assert load_hyperparams("reinforce.yml", env_id, envs.ENV_IDS, user)["learning_rate"] == 0.123
    assert load_hyperparams("reinforce.yml", "HMDB51Glimpse-v0", envs.ENV_IDS, user)["learning_rate"] != 0.123
