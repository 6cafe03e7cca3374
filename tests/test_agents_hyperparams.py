"""Hyperparameter files and the algorithm registry (agents/hyperparams.py, agents/registry.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

import envs
from agents.hyperparams import HYPERPARAMS_DIR, HyperparamError, deep_merge, load_hyperparams, read_yaml
from agents.registry import ALGORITHMS, UnknownAlgorithmError, resolve_algorithm
from agents.sb3 import GlimpseExtractor


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
        resolve_algorithm("agents.network:GlimpseNetwork")


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
def test_zoo_config_names_a_dict_policy_and_our_extractor(env_id: str) -> None:
    entry = read_yaml(HYPERPARAMS_DIR / "zoo.yml")[env_id]
    assert entry["policy"] == "MultiInputPolicy"
    # rl_zoo3 evaluates these strings in its exp_manager module, which imports importlib
    kwargs = eval(entry["policy_kwargs"], {"importlib": importlib})
    assert kwargs["features_extractor_class"] is GlimpseExtractor
    assert eval(entry["normalize"], {})["norm_obs_keys"] == ["glimpse"]
