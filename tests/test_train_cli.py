"""train_agent.py: every algorithm through the CLI, run folders, TensorBoard tags, errors, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from train_fixtures import OVERRIDES, SMALL_NET, TINY

from agents import load_policy, make_env_from_run
from agents.evaluation import evaluate_policy
from agents.training import cli as train_cli
from agents.training.registry import ALGORITHMS

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_TAGS = {"rollout/ep_rew_mean", "rollout/success_rate", "eval/accuracy", "eval/focus_accuracy",
               "eval/mean_reward", "time/fps"}


def tb_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run folder's TensorBoard events: tag -> [(step, value)]."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(run.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                number = value.simple_value if value.HasField("simple_value") else float(
                    np.frombuffer(value.tensor.tensor_content, np.float32)[0]
                    if value.tensor.tensor_content else value.tensor.float_val[0])
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def only_run(logdir: Path) -> Path:
    runs = list(logdir.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
@pytest.mark.parametrize("algo", [*ALGORITHMS, "sb3_contrib:TRPO"])
def test_every_algorithm_trains_through_the_cli(algo: str, tmp_path: Path) -> None:
    hp = write_yaml(tmp_path / "hp.yml", OVERRIDES[algo])
    logdir = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "train_agent.py"), "--algo", algo, "--env-kwargs", *TINY, "--n-envs", "2",
           "--total-timesteps", "200", "--eval-every", "100", "--hyperparams", str(hp), "--logdir", str(logdir),
           "--seed", "1", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout
    run = only_run(logdir)
    assert run.name.startswith(f"SyntheticGlimpse-v0__{algo.replace(':', '-')}__1__")
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == algo and config["env_kwargs"]["num_classes"] == 3 and config["seed"] == 1
    assert config["versions"]["torch"] and "git_commit" in config and config["argv"]
    assert (run / config["model_file"]).is_file() and list((run / "checkpoints").iterdir())
    result = json.loads((run / "result.json").read_text())
    assert result["num_timesteps"] >= 200 and 0.0 <= result["accuracy"] <= 1.0

    tags = tb_scalars(run)
    assert SHARED_TAGS <= set(tags), sorted(tags)
    assert any(t.startswith("train/") for t in tags)
    assert max(step for step, _ in tags["eval/accuracy"]) == result["num_timesteps"]  # x axis: env steps

    policy = load_policy(run)  # the uniform interface: rebuild env from config.json, act deterministically
    env = make_env_from_run(run, num_envs=2)
    again = evaluate_policy(policy, env)
    env.close()
    assert again.n_clips == 6
    if algo != "random":  # the random policy draws again; everything else is deterministic
        assert again.accuracy == pytest.approx(result["accuracy"])


def train_tiny_glimpse_run(algo: str, tmp_path: Path, *env_kwargs: str) -> Path:
    """Train ``algo`` for 100 steps on the tiny env in glimpse mode through train_agent.py; its run folder."""
    hp = write_yaml(tmp_path / "hp.yml", OVERRIDES[algo])
    logdir = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "train_agent.py"), "--algo", algo, "--env-kwargs", *TINY,
           "observation_mode=glimpse", *env_kwargs, "--n-envs", "2", "--total-timesteps", "100", "--eval-every", "0",
           "--hyperparams", str(hp), "--logdir", str(logdir), "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return only_run(logdir)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["reinforce", "lstm_ppo", "ppo"])
def test_glimpse_mode_reads_the_periphery_through_the_cli(algo: str, tmp_path: Path) -> None:
    """Glimpse mode (one cell + the periphery, on by default) trains, reloads and acts like cube mode."""
    run = train_tiny_glimpse_run(algo, tmp_path)
    policy = load_policy(run)
    env = make_env_from_run(run, num_envs=2)
    obs, _ = env.reset(seed=0)
    assert "periphery" in obs and "cube" not in obs
    policy.reset(2)
    actions, probs = policy.act(obs, deterministic=True)
    assert actions.shape == (2, 2) and probs.shape == (2, 3)
    env.close()
    if algo != "ppo":  # our agents' location head scores the periphery (SB3's extractor reads every entry)
        assert policy.network.config.periphery_dim == obs["periphery"].shape[-1]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["reinforce", "lstm_ppo", "ppo"])
def test_early_exit_trains_and_evaluates_through_the_clis(algo: str, tmp_path: Path) -> None:
    """With early_exit every agent acts [cell, class, stop]; evaluate.py charges the frames it watched."""
    run = train_tiny_glimpse_run(algo, tmp_path, "early_exit=True", "frame_cost=0.1")
    policy = load_policy(run)
    env = make_env_from_run(run, num_envs=2)
    obs, _ = env.reset(seed=0)
    policy.reset(2)
    actions, _ = policy.act(obs, deterministic=True)
    assert actions.shape == (2, 3) and set(actions[:, 2].tolist()) <= {0, 1}
    env.close()
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), str(run), "--no-video", "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert 1 <= metrics["frames_watched_per_clip"] <= 5
    assert metrics["cnn_flops_per_clip"] == pytest.approx(metrics["frames_watched_per_clip"]
                                                          * metrics["cnn_flops_per_frame"])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["SyntheticGlimpse-v0", "SyntheticGlimpse-Easy-v0"])
def test_rl_zoo3_trains_with_our_config(env_id: str, tmp_path: Path) -> None:
    # the top rung made tiny; the easy rung as registered (a ladder rung has its own zoo.yml entry)
    tiny = [kv.replace("=", ":") for kv in TINY] if env_id == "SyntheticGlimpse-v0" else []
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", env_id,
           "--gym-packages", "envs", "--conf-file", str(ROOT / "agents/training/hyperparams/zoo.yml"), "-n", "240",
           *(["--env-kwargs", *tiny] if tiny else []), "-params", "n_envs:2", "n_steps:60",
           "batch_size:60", "n_epochs:1", "--eval-freq", "-1", "--seed", "0", "-f", str(tmp_path / "logs")]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = list((tmp_path / "logs").rglob(f"{env_id}.zip"))
    assert len(models) == 1
    from stable_baselines3 import PPO

    from agents.algorithms.sb3 import GlimpseExtractor

    model = PPO.load(models[0])
    assert isinstance(model.policy.features_extractor, GlimpseExtractor)


# ------------------------------------------------------------------------------------------------ errors
def run_cli(args: list[str], logdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = train_cli.main([*args, "--logdir", str(logdir), "--no-progress", "--threads", "1"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "sac2"], "unknown algorithm 'sac2'; known algorithms: reinforce, lstm_ppo"),
        (["--algo", "no_such_module:Algo"], "cannot load algorithm class"),
        (["--algo", "stable_baselines3:DQN"], "DQN cannot handle the env's action space"),
        (["--algo", "stable_baselines3:SAC"], "it supports only Box action spaces"),
        (["--env-kwargs", "num_classes3"], "malformed --env-kwargs entry 'num_classes3'"),
        (["--env-kwargs", "frames=4", "frames=5"], "sets 'frames' twice"),
        (["--env-kwargs", "colour=red"], "cannot build SyntheticGlimpse-v0 with env kwargs {'colour': 'red'}"),
        (["--env", "Nope-v0"], "unknown env 'Nope-v0'"),
        (["--env", "SyntheticGlimpse-Expert-v0"], "unknown env 'SyntheticGlimpse-Expert-v0'; registered glimpse envs: "
                                                  "SyntheticGlimpse-Easy-v0, SyntheticGlimpse-Medium-v0, "
                                                  "SyntheticGlimpse-Hard-v0, SyntheticGlimpse-v0"),
        (["--algo", "soft_attention", "--env-kwargs", "observation_mode=glimpse"], "observation_mode='cube'"),
        (["--n-envs", "0"], "--n-envs must be positive"),
        (["--device", "gpu"], "--device 'gpu' is not a torch device; use cpu, cuda or cuda:N"),
        (["--device", "cuda:99"], "CUDA GPU"),  # none here, or fewer than 100
    ],
)
def test_clear_errors_and_nothing_written(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = tmp_path / "runs"
    code, err = run_cli([*args, "--total-timesteps", "50"], logdir, capsys)
    assert code == 2
    assert message in err
    assert not logdir.exists() or not any(logdir.iterdir())


def test_unknown_hyperparameters_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logdir = tmp_path / "runs"
    hp = write_yaml(tmp_path / "hp.yml", {"learning_rat": 0.1, "network": {"hiden_size": 4}})
    code, err = run_cli(["--hyperparams", str(hp)], logdir, capsys)
    assert code == 2 and "unknown hyperparameter(s) learning_rat" in err and "learning_rate" in err
    hp = write_yaml(tmp_path / "hp.yml", {"SyntheticGlimpse-v0": {"network": {"hiden_size": 4}}})
    code, err = run_cli(["--hyperparams", str(hp)], logdir, capsys)
    assert code == 2 and "hiden_size" in err and "hidden_size" in err
    hp = write_yaml(tmp_path / "hp.yml", {"n_step": 3})
    code, err = run_cli(["--algo", "ppo", "--hyperparams", str(hp)], logdir, capsys)
    assert code == 2 and "n_step" in err and "n_steps" in err
    (tmp_path / "bad.yml").write_text("learning_rate: [1,\n")
    code, err = run_cli(["--hyperparams", str(tmp_path / "bad.yml")], logdir, capsys)
    assert code == 2 and "not valid yaml" in err
    assert not logdir.exists() or not any(logdir.iterdir())


def test_oracle_needs_a_core_annotation(
    stores: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = tmp_path / "runs"
    code, err = run_cli(["--algo", "oracle", "--env", "HMDB51Glimpse-v0", "--env-kwargs",
                         f"data_root={str(stores['hmdb51'])!r}", "--total-timesteps", "50"], logdir, capsys)
    assert code == 2 and "ground-truth action core" in err
    assert not logdir.exists() or not any(logdir.iterdir())


@pytest.mark.slow
def test_a_class_subset_of_a_store_trains_through_the_cli(stores: dict[str, Path], tmp_path: Path) -> None:
    hp = write_yaml(tmp_path / "hp.yml", OVERRIDES["reinforce"])
    base = [sys.executable, str(ROOT / "train_agent.py"), "--algo", "reinforce", "--env", "HMDB51Glimpse-v0",
            "--n-envs", "2", "--total-timesteps", "40", "--hyperparams", str(hp), "--threads", "1", "--no-progress",
            "--logdir", str(tmp_path / "runs"), "--env-kwargs", f"data_root={stores['hmdb51']}"]
    proc = subprocess.run([*base, "max_classes=2"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "config.json").read_text())["env_kwargs"]["max_classes"] == 2
    env = make_env_from_run(run, num_envs=1)
    assert env.single_action_space.nvec.tolist() == [49, 2]  # evaluation rebuilds the same subset
    env.close()
    proc = subprocess.run([*base, "classes=['action_0','jump']"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown class(es) 'jump'" in proc.stderr
    assert "it has action_0, action_1, action_2" in proc.stderr


def _small_hp(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "small.yml", {**SMALL_NET, "n_envs": 4})


def _train(tmp_path: Path, name: str, algo: str, total: int, capsys: pytest.CaptureFixture[str]) -> Path:
    code, err = run_cli(["--algo", algo, "--env-kwargs", *TINY, "--hyperparams", str(_small_hp(tmp_path)),
                         "--total-timesteps", str(total), "--eval-every", "40", "--run-name", name], tmp_path, capsys)
    assert code == 0, err
    return tmp_path / name


@pytest.mark.slow
def test_resume_refuses_another_algorithm_or_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _train(tmp_path, "r", "random", 40, capsys)
    before = sorted(p.name for p in run.rglob("*"))
    code, err = run_cli(["--resume", str(run), "--algo", "reinforce"], tmp_path, capsys)
    assert code == 2 and "is a run of random on SyntheticGlimpse-v0, but --algo reinforce was given" in err
    code, err = run_cli(["--resume", str(run), "--env", "HMDB51Glimpse-v0"], tmp_path, capsys)
    assert code == 2 and "--env HMDB51Glimpse-v0" in err
    code, err = run_cli(["--resume", str(run), "--seed", "3"], tmp_path, capsys)
    assert code == 2 and "--seed cannot change when resuming" in err
    code, err = run_cli(["--resume", str(tmp_path / "nothing")], tmp_path, capsys)
    assert code == 2 and "no such run folder" in err
    assert sorted(p.name for p in run.rglob("*")) == before


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["reinforce", "lstm_ppo"])
def test_resume_equals_uninterrupted(algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = _train(tmp_path, "whole", algo, 200, capsys)
    part = _train(tmp_path, "part", algo, 100, capsys)
    code, err = run_cli(["--resume", str(part), "--total-timesteps", "200"], tmp_path, capsys)
    assert code == 0, err
    a, b = _state(whole), _state(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((part / "config.json").read_text())
    assert config["total_timesteps"] == 200 and len(config["resumes"]) == 1
    # TensorBoard: the resumed stretch continues the curve (no step logged twice)
    steps = [s for s, _ in tb_scalars(part)["eval/accuracy"]]
    assert sorted(steps) == sorted(set(steps)) and max(steps) >= 200


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_that_resume_continues_bit_for_bit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hp = _small_hp(tmp_path)
    run = tmp_path / "interrupted"
    cmd = [sys.executable, str(ROOT / "train_agent.py"), "--algo", "reinforce", "--env-kwargs", *TINY,
           "--hyperparams", str(hp), "--total-timesteps", "100000000", "--eval-every", "0",
           "--checkpoint-every", "20", "--run-name", run.name, "--logdir", str(tmp_path), "--threads", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((run / "checkpoints").glob("step_*.pt")):  # training is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in out and not (run / "model.pt").exists()
    stopped = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))
    total = stopped + 40  # two more iterations of 4 episodes x 5 steps
    code, err = run_cli(["--resume", str(run), "--total-timesteps", str(total)], tmp_path, capsys)
    assert code == 0, err
    whole = _train(tmp_path, "whole", "reinforce", total, capsys)
    a, b = _state(whole), _state(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("algo", "params", "message"),
    [
        ("lstm_ppo", {"class_loss": "label"}, "class_loss: 'label'"),
        ("reinforce", {"learning_rate": "fast"}, "learning_rate: 'fast'"),
        ("reinforce", {"normalize_advantage": 1}, "normalize_advantage: 1"),
        ("lstm_ppo", {"n_epochs": 2.5}, "n_epochs: 2.5"),
        ("reinforce", {"network": {"hidden_size": "big"}}, "hidden_size: 'big'"),
    ],
)
def test_hyperparameters_of_the_wrong_type_or_value_are_named(
    algo: str, params: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value is one line naming the key, the value and what the key accepts; nothing is written."""
    logdir = tmp_path / "runs"
    hp = write_yaml(tmp_path / "hp.yml", params)
    code, err = run_cli(["--algo", algo, "--hyperparams", str(hp)], logdir, capsys)
    assert code == 2 and message in err
    assert ("allowed values: cross_entropy, none" in err) if "class_loss" in params else ("must be" in err)
    assert len(err.strip().splitlines()) == 1
    assert not logdir.exists() or not any(logdir.iterdir())
