"""First-run failures, each through the command line as a user meets them: the exit code, a one-line
message naming what is wrong and where, nothing half-made left behind, the input untouched. Also a kill -9
between two checkpoints, and the progress bar."""

from __future__ import annotations

import hashlib
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
from store_fixtures import generic_store
from train_fixtures import SMALL_NET, TINY

pytestmark = pytest.mark.slow  # command-line subprocesses

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "train_agent.py")]


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The failure's stderr: exit ``code``, exactly one line, no traceback, every needle in it."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def small_hp(tmp_path: Path) -> Path:
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump(SMALL_NET))
    return path


def train_args(tmp_path: Path, *extra: str) -> list[str]:
    return [*TRAIN, "--hyperparams", str(small_hp(tmp_path)), "--n-envs", "2", "--logdir", str(tmp_path / "runs"),
            "--no-progress", *extra]


def assert_no_run(tmp_path: Path) -> None:
    logdir = tmp_path / "runs"
    assert not logdir.exists() or not any(logdir.iterdir()), list(logdir.iterdir())


# ---------------------------------------------------------------------------------------------- 1. resume
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path: Path) -> None:
    first = run(train_args(tmp_path, "--env-kwargs", *TINY, "--total-timesteps", "120", "--eval-every", "0",
                           "--checkpoint-every", "40", "--run-name", "r"), tmp_path)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "runs" / "r"
    (folder / "model.pt").unlink()
    (folder / "result.json").unlink()
    steps = sorted((folder / "checkpoints").glob("step_*.pt"))
    assert len(steps) == 3
    newest, previous = steps[-1], steps[-2]
    newest.write_bytes(newest.read_bytes()[:500])  # a save cut short
    proc = run([*TRAIN, "--resume", str(folder), "--total-timesteps", "160", "--no-progress"], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{newest.name} is damaged" in proc.stderr and f"resuming from {previous.name}" in proc.stderr
    config = json.loads((folder / "config.json").read_text())
    assert config["resumes"][-1]["from"] == previous.name
    assert json.loads((folder / "result.json").read_text())["num_timesteps"] >= 160
    assert (newest.parent / (newest.name + ".damaged")).is_file()  # kept for a look, out of the way


def test_resume_with_every_checkpoint_damaged(tmp_path: Path) -> None:
    first = run(train_args(tmp_path, "--env-kwargs", *TINY, "--total-timesteps", "40", "--eval-every", "0",
                           "--checkpoint-every", "20", "--run-name", "r"), tmp_path)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "runs" / "r"
    for path in (folder / "checkpoints").glob("step_*.pt"):
        path.write_bytes(b"not a checkpoint")
    proc = run([*TRAIN, "--resume", str(folder), "--no-progress"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("train_agent.py: error: every checkpoint of")


def test_kill_9_between_two_checkpoints_resumes_from_the_last_intact_one(tmp_path: Path) -> None:
    hp = small_hp(tmp_path)
    folder = tmp_path / "runs" / "killed"
    cmd = [*TRAIN, "--algo", "reinforce", "--env-kwargs", *TINY, "--hyperparams", str(hp), "--total-timesteps",
           "100000000", "--eval-every", "0", "--checkpoint-every", "20", "--run-name", folder.name, "--logdir",
           str(folder.parent), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(list((folder / "checkpoints").glob("step_*.pt"))) < 2:  # past a first and a second checkpoint
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: whatever was being written stays as it is
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    newest = max((folder / "checkpoints").glob("step_*.pt"))
    stopped = int(newest.stem.split("_")[1])
    total = stopped + 40
    resumed = run([*TRAIN, "--resume", str(folder), "--total-timesteps", str(total), "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((folder / "config.json").read_text())["resumes"][-1]["step"] == stopped
    whole = run([*TRAIN, "--algo", "reinforce", "--env-kwargs", *TINY, "--hyperparams", str(hp), "--total-timesteps",
                 str(total), "--eval-every", "0", "--checkpoint-every", "20", "--run-name", "whole", "--logdir",
                 str(folder.parent), "--no-progress"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    a = torch.load(folder / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(folder.parent / "whole" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # as if never killed


# ---------------------------------------------------------------------------------------------- 2. and 4. stores
@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return generic_store(tmp_path / "store", n=8)


def test_truncated_features_file(tmp_path: Path, store: Path) -> None:
    features = store / "features.npy"
    features.write_bytes(features.read_bytes()[: features.stat().st_size // 2])
    before = digest(store)
    proc = run(train_args(tmp_path, "--env", "StoreGlimpse-v0", "--env-kwargs", f"data_root={store}",
                          "--total-timesteps", "40"), tmp_path)
    one_line_error(proc, 2, str(features), "truncated", "Copy the store again")
    assert_no_run(tmp_path)
    assert digest(store) == before


def test_nan_features_name_their_clip_and_leave_no_run_folder(tmp_path: Path, store: Path) -> None:
    features = np.load(store / "features.npy", mmap_mode="r+")
    features[0, 1, 2, 3, 0] = np.nan  # clip 0 of the train subset, frame 1
    features.flush()
    del features
    before = digest(store)
    # clips are drawn at random: 400 steps (100 episodes of 6 train clips) surely reach clip 0
    proc = run(train_args(tmp_path, "--env", "StoreGlimpse-v0", "--env-kwargs", f"data_root={store}",
                          "--total-timesteps", "400"), tmp_path)
    line = one_line_error(proc, 2, "NaN or inf", "clip 0 (video 'my_0', store row 0)", "frame 1", "re-extract",
                          "no run was started")
    assert "clips [" not in line
    assert_no_run(tmp_path)
    assert digest(store) == before


# ---------------------------------------------------------------------------------------------- 3. env kwargs
def test_env_kwarg_of_the_wrong_type(tmp_path: Path) -> None:
    proc = run(train_args(tmp_path, "--env-kwargs", "num_classes=abc", "--total-timesteps", "40"), tmp_path)
    one_line_error(proc, 2, "num_classes='abc'", "takes an int", "num_classes=51")
    assert_no_run(tmp_path)


def test_env_kwarg_types_come_from_the_constructors() -> None:
    import gymnasium as gym

    import envs  # noqa: F401

    for kwargs, needle in (({"eta": "high"}, "eta takes a float"), ({"glimpse_budget": 2.5}, "an int or None"),
                           ({"observation_mode": 3}, "observation_mode takes a str"),
                           ({"noise": True}, "noise takes a float, got a bool")):
        with pytest.raises(ValueError, match=needle):
            gym.make("SyntheticGlimpse-v0", **kwargs)
    gym.make("SyntheticGlimpse-v0", eta=1, num_classes=np.int64(4), glimpse_budget=None).close()  # ints for floats


# ---------------------------------------------------------------------------------------------- 5. extraction
def test_extraction_where_every_video_fails(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"\x00\x00\x00\x14ftypisom" + bytes(64))  # FFmpeg: "moov atom not found"
    (videos / "b.avi").write_bytes(bytes(range(256)) * 8)
    (videos / "list.txt").write_text("a.mp4 run\nb.avi walk test\n")
    (videos / "classes.txt").write_text("run\nwalk\n")
    before = digest(videos)
    out = tmp_path / "store"
    proc = run([sys.executable, "-m", "feature_extractors", "videos", "--list", str(videos / "list.txt"),
                "--classes", str(videos / "classes.txt"), "--out", str(out), "--weights", "random", "--frames", "2",
                "--workers", "0", "--no-progress"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "moov atom" not in proc.stderr + proc.stdout and "WARN" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no clip could be extracted (all 2 failed" in errors[0]
    assert "complete" not in proc.stderr and "Traceback" not in proc.stderr
    assert "a.mp4: " in proc.stderr  # the reasons are shown
    assert not out.exists()
    assert digest(videos) == before


def test_store_whose_every_clip_failed_says_so(tmp_path: Path) -> None:
    import gymnasium as gym

    import envs  # noqa: F401
    from envs.store import ClipRecord, StoreFormatError, StoreWriter

    writer = StoreWriter.open(tmp_path / "s", class_names=["a"], records=[ClipRecord("v", [0], "train")], frames=2,
                              feature_dim=8)
    writer.mark_failed(0, "cannot decode")
    writer.finalize()
    with pytest.raises(StoreFormatError, match="holds no extracted clip: all 1 failed"):
        gym.make("StoreGlimpse-v0", data_root=str(tmp_path / "s"))


def test_subset_without_clips_names_the_subsets_there(tmp_path: Path) -> None:
    import gymnasium as gym

    import envs  # noqa: F401
    from envs.store import ClipRecord, StoreFormatError, write_store

    store = write_store(tmp_path / "s", np.ones((2, 2, 7, 7, 8), np.float16),
                        [ClipRecord("a", [0], "train"), ClipRecord("b", [0], "train")], ["x"])
    with pytest.raises(StoreFormatError, match=r"no clips in subset 'test' \(its clips are in: train\)") as err:
        gym.make("StoreGlimpse-v0", data_root=str(store), subset="test")
    assert "split files" not in str(err.value)


# ---------------------------------------------------------------------------------------------- 7. progress bar
def test_progress_bar_shows_the_whole_name_ends_at_100_percent_and_follows_the_run_folder(tmp_path: Path) -> None:
    name = "a-run-name-longer-than-forty-characters-to-check-it-is-kept"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 2 envs x 5 steps = 10 steps an iteration: asking for 25 ends at 30, past the total
    common = ["--hyperparams", str(small_hp(tmp_path)), "--n-envs", "2", "--eval-every", "0"]
    first = subprocess.run([*TRAIN, "--env-kwargs", *TINY, *common, "--total-timesteps", "25", "--checkpoint-every",
                            "10", "--run-name", name, "--logdir", str(tmp_path)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert first.returncode == 0, first.stdout
    bars = [line for line in first.stdout.replace("\r", "\n").splitlines() if "step" in line and "|" in line]
    assert bars and all(line.startswith(name + ":") for line in bars), bars
    assert "100%" in bars[-1]
    resumed = subprocess.run([*TRAIN, "--resume", str(tmp_path / name), "--total-timesteps", "45"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    text = resumed.stdout.replace("\r", "\n")
    assert text.index("run folder:") < text.index(name + ":")


# ---------------------------------------------------------------------------------------------- Gymnasium / SB3
def test_infos_follow_the_masked_convention_without_object_arrays_of_none(tmp_path: Path, store: Path) -> None:
    """Without a core annotation ``on_core`` is absent, in the single env and in both vector envs alike."""
    import gymnasium as gym

    import envs  # noqa: F401

    _, info = gym.make("StoreGlimpse-v0", data_root=str(store)).reset(seed=0)
    assert "on_core" not in info
    for mode in ("vector_entry_point", "sync"):
        vec = gym.make_vec("StoreGlimpse-v0", num_envs=3, vectorization_mode=mode, data_root=str(store))
        _, info = vec.reset(seed=0)
        _, _, _, _, info = vec.step(np.zeros((3, 2), np.int64))
        assert "on_core" not in info and "_on_core" not in info
        assert all(v.dtype != object for k, v in info.items() if k != "video_id"), mode
    with_core = gym.make_vec("SyntheticGlimpse-v0", num_envs=2, vectorization_mode="vector_entry_point",
                             num_classes=3, feature_dim=8, frames=3)
    _, info = with_core.reset(seed=0)
    assert info["on_core"].dtype == bool and info["_on_core"].all()


def test_our_agents_train_without_importing_sb3(tmp_path: Path) -> None:
    code = ("import sys, train_agent; code = train_agent.main(sys.argv[1:]); "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('stable_baselines3', 'sb3_contrib')); "
            "print('SB3 MODULES', loaded); sys.exit(code)")
    proc = run([sys.executable, "-c", code, "--hyperparams", str(small_hp(tmp_path)), "--env-kwargs", *TINY,
                "--n-envs", "2", "--total-timesteps", "20", "--logdir", str(tmp_path / "runs"), "--no-progress"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SB3 MODULES []" in proc.stdout
    from agents.training.registry import ALGORITHMS

    assert ALGORITHMS["ppo"].is_sb3 and ALGORITHMS["ppo"].cls.__name__ == "PPO"  # imported when named
