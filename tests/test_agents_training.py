"""What training relies on beyond learning: the env's own rules reach the network, PPO's early stop on the KL,
checkpoints pruned and resumed (SB3 included), and files of another format refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml
from train_fixtures import OVERRIDES, SMALL_NET, TINY, TINY_ENV, FakeSession, build_agent

import envs
from agents.algorithms.network import GlimpseNetwork, NetworkConfig
from agents.algorithms.policy import NetworkPolicy
from agents.evaluation import metrics as M
from agents.evaluation.run import RunError, open_run
from agents.training import cli as train_cli
from agents.training.envutil import EnvShape, make_vector_env
from agents.training.runs import CONFIG_FORMAT, FormatError, RunFolder

torch.set_num_threads(1)

#: A registered variant whose own kwargs set glimpses_per_frame (the caller passes none).
VARIANT = "TestGlimpseTwoPerFrame-v0"
if VARIANT not in gym.registry:
    gym.register(VARIANT, entry_point="envs.glimpse_env:GlimpseEnv", vector_entry_point="envs.vector:GlimpseVectorEnv",
                 kwargs={"dataset": "synthetic", "glimpses_per_frame": 2})


# ---------------------------------------------------------------------------------------------- the env's rules
def test_env_shape_reads_glimpses_per_frame_from_the_env_not_the_callers_kwargs() -> None:
    env = make_vector_env(VARIANT, TINY_ENV, 2)
    try:
        assert EnvShape.of(env).glimpses_per_frame == 2
    finally:
        env.close()
    agent = build_agent("reinforce", TINY_ENV, env_id=VARIANT, **SMALL_NET, n_envs=2)
    try:
        assert agent.network.config.glimpses_per_frame == 2
        batch = agent.collect()  # the network and the env agree: 5 frames x 2 glimpses
        assert batch.length == 2 * TINY_ENV["frames"]
    finally:
        agent.close()


@pytest.mark.parametrize(
    ("config", "reads"),
    [({"use_cube": True}, True), ({"use_cube": False}, False), ({"use_cube": False, "input_mode": "soft"}, True),
     ({"use_cube": False, "input_mode": "mean"}, True)],
)
def test_reads_cube_is_a_property_of_the_network_config(config: dict, reads: bool) -> None:
    cfg = NetworkConfig(feature_dim=16, num_classes=3, embed_dim=8, hidden_size=8, num_layers=1, class_hidden=8,
                        **config)
    assert cfg.reads_cube is reads
    env = make_vector_env(envs.DEFAULT_ENV, TINY_ENV, 1)  # cube mode: the env serves the cube either way
    try:
        assert M.reads_cube(NetworkPolicy(GlimpseNetwork(cfg), "learned"), env) is reads
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------- target_kl
@pytest.mark.parametrize(("target_kl", "steps"), [(None, 4), (1e9, 4), (1e-6, 2)])
def test_target_kl_stops_the_epochs_early(target_kl: float | None, steps: int) -> None:
    """4 epochs of one minibatch: the first is on-policy (KL ~ 0), so a tiny target stops after the second."""
    agent = build_agent("lstm_ppo", TINY_ENV, **SMALL_NET, n_envs=4, n_epochs=4, n_minibatches=1,
                        learning_rate=0.01, target_kl=target_kl)
    calls = []
    step_optimizer = agent.step_optimizer

    def counted(loss: torch.Tensor) -> dict[str, float]:
        calls.append(1)
        return step_optimizer(loss)

    agent.step_optimizer = counted  # type: ignore[method-assign]
    session = FakeSession(stop_after=1)
    agent.learn(10**6, session)
    agent.close()
    assert len(calls) == steps
    assert session.metrics["train/approx_kl"] >= 0


# ---------------------------------------------------------------------------------------------- run folders
def test_prune_checkpoints_keeps_the_newest_and_their_side_files(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.checkpoint_dir.mkdir(parents=True)
    for step in (10, 20, 30, 40):
        run.checkpoint_path(step, ".zip").write_text("model")
        run.checkpoint_path(step, ".vecnormalize.pkl").write_text("stats")
    (run.checkpoint_dir / "notes.txt").write_text("not a checkpoint")
    run.prune_checkpoints(2)
    assert [step for step, _ in run.checkpoints()] == [30, 40]
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == sorted(
        [run.checkpoint_path(s, suffix).name for s in (30, 40) for suffix in (".zip", ".vecnormalize.pkl")]
        + ["notes.txt"]
    )
    run.prune_checkpoints(0)  # 0: keep every checkpoint
    assert [step for step, _ in run.checkpoints()] == [30, 40]


def _config(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"env_id": envs.DEFAULT_ENV, "algo": "reinforce", **fields}))
    return path


def test_a_config_of_another_format_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _config(tmp_path, format=CONFIG_FORMAT + 1)
    with pytest.raises(FormatError, match=f"has format {CONFIG_FORMAT + 1} but this code reads format"):
        RunFolder(path).read_config()
    with pytest.raises(RunError, match="format") as exc:
        open_run(path)
    assert "\n" not in str(exc.value)


def test_a_config_of_this_format_is_read(tmp_path: Path) -> None:
    path = _config(tmp_path, format=CONFIG_FORMAT)
    assert RunFolder(path).read_config()["format"] == CONFIG_FORMAT
    assert open_run(path).algo == "reinforce"


def test_a_checkpoint_of_another_format_is_refused(tmp_path: Path) -> None:
    agent = build_agent("reinforce", TINY_ENV, **SMALL_NET, n_envs=2)
    try:
        path = tmp_path / "step.pt"
        agent.save_checkpoint(path)
        agent.load_checkpoint(path)  # its own format loads
        saved = torch.load(path, weights_only=False)
        torch.save({**saved, "format": saved["format"] + 1}, path)
        with pytest.raises(FormatError, match="this code reads format"):
            agent.load_checkpoint(path)
    finally:
        agent.close()


# ---------------------------------------------------------------------------------------------- through the CLI
def _cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = train_cli.main([*args, "--logdir", str(tmp_path), "--no-progress", "--threads", "1"])
    return code, capsys.readouterr().err


def _hp(tmp_path: Path, algo: str) -> str:
    path = tmp_path / f"{algo.replace(':', '-')}.yml"
    path.write_text(yaml.safe_dump(OVERRIDES[algo]))
    return str(path)


@pytest.mark.slow
def test_keep_checkpoints_prunes_during_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(tmp_path, capsys, "--algo", "reinforce", "--env-kwargs", *TINY, "--hyperparams",
                     _hp(tmp_path, "reinforce"), "--n-envs", "2", "--total-timesteps", "100", "--eval-every", "0",
                     "--checkpoint-every", "10", "--keep-checkpoints", "2", "--run-name", "r")
    assert code == 0, err
    steps = [step for step, _ in RunFolder(tmp_path / "r").checkpoints()]
    assert steps == [90, 100]  # 10 written, the 2 newest kept


@pytest.mark.slow
def test_sb3_resume_continues_from_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An SB3 run resumes from its newest checkpoint's weights, normalisation and step count (not bit for bit:
    SB3 checkpoints keep no RNG state), and its curve continues without logging a step twice."""
    from stable_baselines3 import PPO

    from agents.algorithms.sb3 import SB3Algorithm

    common = ["--hyperparams", _hp(tmp_path, "ppo"), "--eval-every", "40", "--checkpoint-every", "40"]
    code, err = _cli(tmp_path, capsys, "--algo", "ppo", "--env-kwargs", *TINY, "--n-envs", "1",
                     "--total-timesteps", "80", "--run-name", "p", *common)
    assert code == 0, err
    run = RunFolder(tmp_path / "p")
    newest = run.latest_checkpoint()
    assert newest is not None and newest.name == run.checkpoint_path(80, ".zip").name
    expected = PPO.load(newest).policy.state_dict()

    loaded: list[tuple[int, dict]] = []
    load_checkpoint = SB3Algorithm.load_checkpoint

    def spy(self: SB3Algorithm, path: Path) -> None:
        load_checkpoint(self, path)
        loaded.append((self.num_timesteps, {k: v.clone() for k, v in self.model.policy.state_dict().items()}))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SB3Algorithm, "load_checkpoint", spy)
        code, err = _cli(tmp_path, capsys, "--resume", str(run.path), "--total-timesteps", "160")
    assert code == 0, err
    assert len(loaded) == 1 and loaded[0][0] == 80
    assert all(torch.equal(loaded[0][1][k], expected[k]) for k in expected)
    config = run.read_config()
    assert config["resumes"][-1]["from"] == newest.name and config["resumes"][-1]["step"] == 80
    assert json.loads((run.path / "result.json").read_text())["num_timesteps"] == 160
    assert PPO.load(run.path / "model.zip").num_timesteps == 160
    steps = [record["step"] for record in run.read_evals()]
    assert steps == sorted(set(steps)) and steps[-1] == 160


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_format_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(tmp_path, capsys, "--algo", "reinforce", "--env-kwargs", *TINY, "--hyperparams",
                     _hp(tmp_path, "reinforce"), "--n-envs", "2", "--total-timesteps", "20", "--eval-every", "0",
                     "--run-name", "r")
    assert code == 0, err
    run = RunFolder(tmp_path / "r")
    newest = run.latest_checkpoint()
    assert newest is not None
    saved = torch.load(newest, weights_only=False)
    torch.save({**saved, "format": saved["format"] + 1}, newest)
    code, err = _cli(tmp_path, capsys, "--resume", str(run.path), "--total-timesteps", "40")
    assert code == 2 and "this code reads format" in err and len(err.strip().splitlines()) == 1
    assert newest.is_file() and not list(run.checkpoint_dir.glob("*.damaged"))  # not mistaken for damage
