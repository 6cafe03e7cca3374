"""One writer per run folder, store and sweep, and no process left behind when a command is killed with SIGKILL.

Each test drives the command lines as a user does (subprocesses) and checks the exit code, the one-line
message, that nothing was half-made, and (through ``/proc``) that no child process outlives a killed command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from process_fixtures import descendants, survivors
from ray_fixtures import marked_env, marked_pids
from test_reliability import ROOT, TRAIN, one_line_error, run, small_hp
from train_fixtures import SMALL_NET, TINY
from video_fixtures import write_video

from envs.files import LOCK_FILE, FolderInUseError, lock_folder, lock_holder, replace_atomically, temp_path

# subprocess command lines (kills, locks, one-line errors): the slow tier
pytestmark = pytest.mark.slow

#: seconds a killed command's children get to go (they exit within a fraction of that)
GRACE_S = 15


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``cmd`` with its output in the file ``log`` (a pipe nobody reads would fill up and stall the
    command and every child that inherited it)."""
    env = env or {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _wait_for(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"never saw {what}: {proc.log.read_text()[-3000:]}")
        time.sleep(0.1)


def _kill_and_check_children(proc: subprocess.Popen[str], extra: set[int] = frozenset()) -> None:
    """SIGKILL ``proc`` (no handler runs), then every process it had started must be gone within GRACE_S."""
    children = descendants(proc.pid) | set(extra)
    assert children, "the command had started no process: the test would check nothing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    left = survivors(children, GRACE_S)
    for pid in left:  # leave the machine clean even when the check fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the killed command: {left}"


# ---------------------------------------------------------------------------------------------- the lock itself
def test_the_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path: Path) -> None:
    code = ("import sys, time; from envs.files import lock_folder; lock = lock_folder(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert lock_holder(tmp_path) == holder.pid
        try:
            lock_folder(tmp_path, "run folder")
        except FolderInUseError as exc:
            message = str(exc)
        else:
            raise AssertionError("a second writer took a held lock")
        assert f"run folder '{tmp_path}' is being written by process {holder.pid}" in message and "\n" not in message
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.stdout.close()
    assert lock_holder(tmp_path) is None  # kill -9 left no stale lock
    with lock_folder(tmp_path) as lock:
        assert lock.held


def test_temporary_files_are_unique_per_writer(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    first, second = temp_path(target), temp_path(target)
    assert first != second and first.parent == second.parent == tmp_path
    first.unlink()
    second.unlink()
    replace_atomically(target, "{}")
    assert target.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


# ---------------------------------------------------------------------------------------------- run folders
def test_resume_of_a_run_that_is_still_training_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "live"
    cmd = [*TRAIN, "--env-kwargs", *TINY, "--hyperparams", str(small_hp(tmp_path)), "--n-envs", "2",
           "--total-timesteps", "100000000", "--eval-every", "0", "--checkpoint-every", "20", "--keep-checkpoints", "1",
           "--run-name", folder.name, "--logdir", str(folder.parent), "--no-progress"]
    live = _start(cmd, tmp_path / "live.log")
    try:
        _wait_for(live, lambda: any((folder / "checkpoints").glob("step_*.pt")), "a first checkpoint")
        second = run([*TRAIN, "--resume", str(folder), "--no-progress"], tmp_path)
        one_line_error(second, 2, "train_agent.py: error: run folder", str(folder), f"process {live.pid}",
                       "one writer at a time")
        fresh = run(cmd, tmp_path)  # the same fresh run again
        one_line_error(fresh, 2, "already exists")
        assert live.poll() is None  # the live run goes on, its checkpoints untouched
        assert not list(folder.rglob("*.damaged"))
        assert lock_holder(folder) == live.pid
    finally:
        live.kill()
        live.wait(timeout=60)
    assert lock_holder(folder) is None


# ---------------------------------------------------------------------------------------------- stores
def _video_list(root: Path, clips: int, frames: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        write_video(root / f"v{i}.avi", frames, 10.0)
    (root / "list.txt").write_text("".join(f"v{i}.avi {'run' if i % 2 else 'walk'}\n" for i in range(clips)))
    return root / "list.txt"


def _extract_cmd(videos: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "feature_extractors", "videos", "--list", str(videos), "--out", str(out),
            "--weights", "random", "--device", "cpu", "--no-progress", *extra]


def test_second_extraction_into_a_store_being_written_is_refused(tmp_path: Path) -> None:
    videos = _video_list(tmp_path / "videos", 2, frames=8)
    out = tmp_path / "store"
    out.mkdir()
    with lock_folder(out, "feature store"):  # an extraction of this process is writing the store
        proc = run(_extract_cmd(videos, out, "--frames", "2", "--workers", "0"), tmp_path)
    line = one_line_error(proc, 2, f"feature store '{out}' is being written by process {os.getpid()}")
    assert line.startswith("error: ")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written by the refused one
    done = run(_extract_cmd(videos, out, "--frames", "2", "--workers", "0"), tmp_path)  # the lock went with it
    assert done.returncode == 0, done.stderr
    assert "complete; 2 clips, weights" in done.stderr


def test_extraction_killed_with_sigkill_leaves_no_process(tmp_path: Path) -> None:
    videos = _video_list(tmp_path / "videos", 12)
    out = tmp_path / "store"
    proc = _start(_extract_cmd(videos, out, "--frames", "30", "--workers", "1", "--batch-size", "8"),
                  tmp_path / "extract.log")
    # past the first clip: the fork server, the decoding worker and the resource tracker all run
    _wait_for(proc, lambda: (out / "done.jsonl").is_file() and (out / "done.jsonl").read_text().strip() != "",
              "a finished clip")
    _kill_and_check_children(proc)
    assert lock_holder(out) is None  # and it holds no lock: the same command resumes
    assert json.loads((out / "meta.json").read_text())["complete"] is False


def test_sweep_driver_killed_with_sigkill_leaves_no_ray_process(tmp_path: Path, marker: str) -> None:
    spec = {"env": "SyntheticGlimpse-v0", "algos": ["reinforce"], "seeds": [0],
            "env_kwargs": [{k: int(v) for k, v in (item.split("=") for item in TINY)}],
            "hyperparams": [{**SMALL_NET, "n_envs": 2}], "train": {"total_timesteps": 100_000_000, "eval_every": 0}}
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "agents.training.sweep", "--spec", str(tmp_path / "spec.yml"), "--out", str(out),
           "--cpus", "1"]
    proc = _start(cmd, tmp_path / "sweep.log", env=marked_env(marker))
    # a trial trains: local Ray is up with all its processes (GCS, raylet, agents, the trial's worker)
    _wait_for(proc, lambda: any(out.glob("*/config.json")), "a trial's run folder", timeout=300)
    ray_processes = set(marked_pids(marker, b"ray::")) | set(marked_pids(marker))
    _kill_and_check_children(proc, ray_processes - {proc.pid})
