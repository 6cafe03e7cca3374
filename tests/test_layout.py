"""The package by layer: installed commands, an infrastructure layer that loads no policy, the scripts and the
sweep calling the package functions, and SB3 zips whose pickles name the flat ``agents.<module>`` paths."""

from __future__ import annotations

import base64
import importlib
import json
import os
import pickle
import runpy
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from train_fixtures import OVERRIDES, SMALL_NET, TINY, TINY_ENV

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _entry_point(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def test_the_commands_are_declared() -> None:
    assert sorted(SCRIPTS) == ["glimpse-evaluate", "glimpse-extract", "glimpse-sweep", "glimpse-train"]


def test_the_package_data_patterns_match_files() -> None:
    """Each ``[tool.setuptools.package-data]`` entry names a package folder, and each pattern files in it."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        folder = ROOT / package.replace(".", "/")
        assert (folder / "__init__.py").is_file(), package
        assert all(list(folder.glob(pattern)) for pattern in patterns), (package, patterns)
    from agents.training.hyperparams import HYPERPARAMS_DIR

    assert HYPERPARAMS_DIR == ROOT / "agents" / "training" / "hyperparams"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_command_imports_and_answers_help(name: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import agents.common.children

    monkeypatch.setattr(agents.common.children, "reap_children_on_exit", lambda: None)  # no watcher for pytest
    with pytest.raises(SystemExit) as exit_info:
        _entry_point(SCRIPTS[name])(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_scripts_run_the_package_commands() -> None:
    from agents.evaluation.cli import main as evaluate_main
    from agents.training.cli import main as train_main

    assert runpy.run_path(str(ROOT / "train_agent.py"))["main"] is train_main
    assert runpy.run_path(str(ROOT / "evaluate.py"))["main"] is evaluate_main


def test_the_infrastructure_loads_no_policy() -> None:
    code = ("import sys, feature_extractors.cli, agents.common.cluster, agents.common.devices, "
            "agents.common.children, agents.common.checks; "
            "print(sorted(m for m in sys.modules if m.startswith(('agents.algorithms', 'agents.training', "
            "'agents.evaluation'))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr or proc.stdout


def test_the_public_names_load_on_first_use() -> None:
    import agents
    from agents import Policy, load_policy, make_env_from_run
    from agents.algorithms.policy import Policy as PolicyHome
    from agents.training.runs import load_policy as load_policy_home

    assert Policy is PolicyHome and load_policy is load_policy_home and callable(make_env_from_run)
    assert {"Policy", "load_policy", "make_env_from_run"} <= set(dir(agents))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        agents.no_such_name  # noqa: B018


def test_a_pickled_flat_module_path_resolves() -> None:
    from agents.algorithms.sb3 import GlimpseExtractor, pickled_module_names

    reference = b"cagents.sb3\nGlimpseExtractor\n."  # protocol 2: a class by module path and name
    with pickled_module_names():
        assert pickle.loads(reference) is GlimpseExtractor
    assert "agents.sb3" not in sys.modules


@pytest.mark.slow  # trains
def test_sweep_trial_calls_the_training_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial trains through :func:`agents.training.cli.main` in the worker's process, from any folder."""
    from agents.training import cli, sweep

    calls: list[list[str]] = []
    train = cli.main

    def recording(argv: list[str], on_eval: Any = None) -> int:
        calls.append(list(argv))
        return train(argv, on_eval=on_eval)

    monkeypatch.setattr(cli, "main", recording)
    monkeypatch.chdir(tmp_path)  # no checkout of the repository needed
    out = tmp_path / "sweep"
    (trial,) = sweep.expand({"algos": ["reinforce"], "env_kwargs": [TINY_ENV], "hyperparams": [{**SMALL_NET,
                             "n_envs": 2}], "train": {"total_timesteps": 40, "eval_every": 20}})
    (out / sweep.SWEEP_DIR).mkdir(parents=True)
    (out / sweep.SWEEP_DIR / f"{trial['run_name']}.yml").write_text(yaml.safe_dump(trial["hyperparams"]))
    reports: list[dict[str, Any]] = []
    config = {"trial": trial, "out": str(out), "threads": 1, "device": "cpu"}
    final = sweep.run_trial(config, reports.append)
    assert len(calls) == 1 and calls[0][calls[0].index("--run-name") + 1] == trial["run_name"]
    assert [r["env_steps"] for r in reports[:-1]] == [20, 40] and reports[-1]["done_before"] is False
    assert final == json.loads((out / trial["run_name"] / "result.json").read_text())
    assert sweep.run_trial(config, reports.append) == final and len(calls) == 1  # finished: never redone
    assert reports[-1]["done_before"] is True


@pytest.mark.slow  # trains
def test_sb3_zip_naming_the_flat_module_path_loads(tmp_path: Path) -> None:
    """An SB3 zip whose ``policy_kwargs`` pickle names ``agents.sb3.GlimpseExtractor`` (the flat layout's path)
    loads into the class of ``agents.algorithms.sb3``, for evaluation and for resuming."""
    from agents import load_policy
    from agents.algorithms.sb3 import GlimpseExtractor
    from agents.training import cli

    hp = tmp_path / "hp.yml"
    hp.write_text(yaml.safe_dump(OVERRIDES["ppo"]))
    argv = ["--algo", "ppo", "--env-kwargs", *TINY, "--hyperparams", str(hp), "--n-envs", "2",
            "--total-timesteps", "80", "--logdir", str(tmp_path), "--run-name", "r", "--no-progress"]
    assert cli.main(argv) == 0
    run = tmp_path / "r"
    for path in [run / "model.zip", *(run / "checkpoints").glob("*.zip")]:
        _name_the_extractor_by_the_flat_path(path)
    policy = load_policy(run)
    assert type(policy.model.policy.features_extractor) is GlimpseExtractor
    assert "agents.sb3" not in sys.modules
    assert cli.main(["--resume", str(run), "--total-timesteps", "120", "--no-progress"]) == 0


def _name_the_extractor_by_the_flat_path(path: Path) -> None:
    """Rewrite the pickled ``policy_kwargs`` of an SB3 zip so that it names ``agents.sb3.GlimpseExtractor``."""
    import cloudpickle

    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    data = json.loads(members["data"])
    kwargs = cloudpickle.loads(base64.b64decode(data["policy_kwargs"][":serialized:"]))
    ours, flat = b"cagents.algorithms.sb3\nGlimpseExtractor\n", b"cagents.sb3\nGlimpseExtractor\n"
    raw = pickle.dumps(kwargs, protocol=2)
    assert raw.count(ours) == 1
    data["policy_kwargs"][":serialized:"] = base64.b64encode(raw.replace(ours, flat)).decode()
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)


@pytest.mark.slow
def test_the_sweep_command_also_runs_as_agents_sweep() -> None:
    proc = subprocess.run([sys.executable, "-m", "agents.sweep", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--spec" in proc.stdout
