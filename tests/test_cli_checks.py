"""Bad input refused before anything starts, damaged store files named, threads kept to the count asked for,
and the small promises of the command lines (help text, hyperparameter files, reset options, summaries)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from ray_fixtures import marked_env
from store_fixtures import generic_store
from test_reliability import ROOT, TRAIN, assert_no_run, one_line_error, run, small_hp, train_args
from train_fixtures import TINY

import envs  # noqa: F401  (registers the env ids)
from envs.files import lock_folder
from envs.store import ClipRecord, StoreFormatError, StoreWriter

# subprocess command lines (locks, one-line errors, thread counts): the slow tier
pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------- damaged store files
def _rewrite_line(file: Path, number: int, text: str) -> None:
    lines = file.read_text().splitlines()
    lines[number - 1] = text
    file.write_text("\n".join(lines) + "\n")


def _meta(store: Path, **changes: object) -> None:
    meta = json.loads((store / "meta.json").read_text())
    (store / "meta.json").write_text(json.dumps({**meta, **changes}))


INDEX, META = "index.jsonl", "meta.json"
DAMAGE = {
    "index line not JSON": (lambda s: _rewrite_line(s / INDEX, 3, '{"video_id": "my_2", "lab'),
                            [f"{INDEX} line 3", "not valid JSON"]),
    "index row without labels": (lambda s: _rewrite_line(s / INDEX, 2, '{"video_id": "my_1", "subset": "train"}'),
                                 [f"{INDEX} line 2 (row 1)", "has no 'labels'"]),
    "index row of the wrong type": (lambda s: _rewrite_line(s / INDEX, 4, "[1, 2]"),
                                    [f"{INDEX} line 4 (row 3)", "a JSON list, not a clip object"]),
    "labels not a list of ints": (lambda s: _rewrite_line(s / INDEX, 1, '{"video_id": "a", "labels": "run", '
                                                          '"subset": "train"}'), ["line 1 (row 0)", "labels"]),
    "meta not JSON": (lambda s: (s / META).write_text('{"format_version": 1, '), [f"{META} is not valid JSON"]),
    "meta a list": (lambda s: (s / META).write_text("[1, 2]"), [f"{META} is a JSON list"]),
    "class names not a list": (lambda s: _meta(s, class_names={"a": 0}), [f"{META} field 'class_names'"]),
    "meta without frames": (lambda s: _meta(s, frames=None), [f"{META} field 'frames'"]),
    "failure row out of range": (lambda s: (s / "failures.jsonl").write_text('{"row": 99, "reason": "x"}\n'),
                                 ["failures.jsonl line 1", "does not name a row"]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store_file_is_named_by_gym_make(tmp_path: Path, damage: str) -> None:
    store = generic_store(tmp_path / "store", n=8)
    spoil, needles = DAMAGE[damage]
    spoil(store)
    with pytest.raises(StoreFormatError) as err:
        gym.make("StoreGlimpse-v0", data_root=str(store))
    message = str(err.value)
    assert "\n" not in message and f"Store '{store}'" in message, message
    assert "Copy the store again" in message or "re-extract" in message, message  # the fix
    for needle in needles:
        assert needle in message, (needle, message)


def test_damaged_index_is_one_line_from_train_agent(tmp_path: Path) -> None:
    store = generic_store(tmp_path / "store", n=8)
    _rewrite_line(store / "index.jsonl", 5, "not json at all")
    proc = run(train_args(tmp_path, "--env", "StoreGlimpse-v0", "--env-kwargs", f"data_root={store}",
                          "--total-timesteps", "40"), tmp_path)
    one_line_error(proc, 2, "train_agent.py: error:", str(store), "index.jsonl line 5", "not valid JSON",
                   "Copy the store again")
    assert_no_run(tmp_path)


def test_damaged_completion_log_is_named_when_an_extraction_resumes(tmp_path: Path) -> None:
    records = [ClipRecord(f"v{i}", [0], "train") for i in range(3)]
    writer = StoreWriter.open(tmp_path / "s", class_names=["a"], records=records, frames=2, feature_dim=8)
    writer.write_clip(0, np.ones((2, 7, 7, 8), np.float32))
    writer.close()
    with open(tmp_path / "s" / "done.jsonl", "a") as f:
        f.write('{"row": "one"}\n')
    with pytest.raises(StoreFormatError, match=r"done.jsonl line 2 does not name a row .* Delete that line"):
        StoreWriter.open(tmp_path / "s", class_names=["a"], records=records, frames=2, feature_dim=8)


# ---------------------------------------------------------------------------------------------- seeds and step counts
@pytest.mark.parametrize(("algo", "seed"), [("reinforce", "-1"), ("lstm_ppo", "-1"), ("ppo", "-1"),
                                            ("ppo", "99999999999999999999"), ("reinforce", str(2**32))])
def test_bad_seed_is_refused_before_anything_starts(tmp_path: Path, algo: str, seed: str) -> None:
    proc = run(train_args(tmp_path, "--algo", algo, "--env-kwargs", *TINY, "--seed", seed, "--total-timesteps", "40"),
               tmp_path)
    one_line_error(proc, 2, "train_agent.py: error: --seed must lie in [0, 4294967295]", seed)
    assert_no_run(tmp_path)


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_no_training_steps_is_refused(tmp_path: Path, steps: str) -> None:
    proc = run(train_args(tmp_path, "--env-kwargs", *TINY, "--total-timesteps", steps), tmp_path)
    one_line_error(proc, 2, "--total-timesteps must be positive", steps)
    assert_no_run(tmp_path)


@pytest.mark.parametrize(("args", "needle"), [(["--seeds", "-1"], "every seed must lie in [0, 4294967295]"),
                                              (["--seeds", "0", "4294967296"], "got 4294967296"),
                                              (["--total-timesteps", "-5"], "total_timesteps must be positive"),
                                              (["--total-timesteps", "0"], "total_timesteps must be positive"),
                                              (["--eval-clips", "0"], "eval_clips must be positive")])
def test_sweep_refuses_bad_seeds_and_step_counts_before_ray_starts(tmp_path: Path, args: list[str],
                                                                   needle: str) -> None:
    out = tmp_path / "sweep"
    # Ray is made unimportable: a sweep that got as far as starting it would fail differently
    code = "import sys; sys.modules['ray'] = None; from agents.training.sweep import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "--algos", "random", "--env-kwargs", *TINY, "--out", str(out),
                           *args], cwd=ROOT, env=marked_env("none"), capture_output=True, text=True, timeout=300)
    one_line_error(proc, 2, "sweep: error:", needle)
    assert not out.exists()


def test_extraction_refuses_a_bad_seed(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a.avi run\n")
    proc = run([sys.executable, "-m", "feature_extractors", "videos", "--list", str(tmp_path / "list.txt"), "--out",
                str(tmp_path / "s"), "--weights", "random", "--seed", "-3", "--no-progress"], tmp_path)
    one_line_error(proc, 2, "error: --seed must lie in [0, 4294967295]")
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------- threads
def test_train_and_evaluate_keep_to_the_threads_asked_for(tmp_path: Path) -> None:
    """torch.get_num_threads() inside the runs; OMP_NUM_THREADS=5 would be torch's own choice."""
    logdir = tmp_path / "runs"
    code = f"""
import sys, torch
from agents.evaluation import cli as evaluate_cli
from agents.training import cli as train_cli

seen = []
argv = ["--hyperparams", {str(small_hp(tmp_path))!r}, "--env-kwargs", *{TINY!r}, "--n-envs", "2",
        "--total-timesteps", "20", "--eval-every", "10", "--logdir", {str(logdir)!r}, "--run-name", "r",
        "--no-progress"]
assert train_cli.main(argv + ["--threads", "3"], on_eval=lambda record: seen.append(torch.get_num_threads())) == 0
print("train", sorted(set(seen)))
run = {str(logdir / "r")!r}
assert evaluate_cli.main([run, "--no-progress", "--no-video"]) == 0
print("evaluate default", torch.get_num_threads())
assert evaluate_cli.main([run, "--no-progress", "--no-video", "--threads", "2"]) == 0
print("evaluate 2", torch.get_num_threads())
"""
    env = {**marked_env("none"), "OMP_NUM_THREADS": "5"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train [3]" in proc.stdout and "evaluate default 1" in proc.stdout and "evaluate 2 2" in proc.stdout, \
        proc.stdout
    report = json.loads((logdir / "r" / "eval.json").read_text())
    assert report["settings"]["threads"] == 2
    assert "with 2 torch CPU threads" in (logdir / "r" / "eval.md").read_text()


# ---------------------------------------------------------------------------------------------- smaller promises
def test_help_states_each_default_once() -> None:
    from agents.training import cli as train_cli

    text = train_cli.build_parser().format_help()
    assert "(default: None)" not in text and "(default SyntheticGlimpse-v0)" in text
    assert "(default runs)" in text and "(default 3)" in text


def test_hyperparameter_file_that_is_a_directory_or_empty(tmp_path: Path) -> None:
    proc = run([*TRAIN, "--hyperparams", str(tmp_path), "--env-kwargs", *TINY, "--logdir", str(tmp_path / "runs"),
                "--total-timesteps", "20", "--no-progress"], tmp_path)
    one_line_error(proc, 2, f"hyperparameter file {tmp_path} is a directory")
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing yet\n")
    proc = run([*TRAIN, "--hyperparams", str(empty), "--env-kwargs", *TINY, "--logdir", str(tmp_path / "runs"),
                "--total-timesteps", "20", "--no-progress"], tmp_path)
    one_line_error(proc, 2, f"hyperparameter file {empty} is empty")
    assert_no_run(tmp_path)


def test_unknown_reset_options_are_refused() -> None:
    env = gym.make("SyntheticGlimpse-v0", num_classes=3, feature_dim=8, frames=3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'video_idx'; this env takes 'video_index'"):
        env.reset(seed=0, options={"video_idx": 1})
    env.reset(seed=0, options={"video_index": 1})
    vec = gym.make_vec("SyntheticGlimpse-v0", num_envs=2, vectorization_mode="vector_entry_point", num_classes=3,
                       feature_dim=8, frames=3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'mask'; this env takes 'video_index', 'reset_mask'"):
        vec.reset(seed=0, options={"mask": [True, False]})
    vec.reset(seed=0, options={"video_index": 0, "reset_mask": np.array([True, False])})


def test_extraction_summary_counts_clips_apart_from_failed_rows(tmp_path: Path) -> None:
    from feature_extractors.extract import Summary

    summary = Summary(store=tmp_path, clips_total=5, clips_done_before=0, clips_done=4, clips_failed=1, frames=8,
                      seconds=1.0, complete=True, weights="random", device="cpu",
                      failures=[{"row": 2, "video_id": "c", "reason": "cannot decode"}])
    last = summary.text().splitlines()[-1]
    assert "complete; 4 clips (1 of 5 rows failed)" in last, last


def test_evaluation_of_a_run_still_training_says_so(tmp_path: Path) -> None:
    from agents.evaluation import cli as evaluate_cli

    logdir = tmp_path / "runs"
    proc = run([*TRAIN, "--hyperparams", str(small_hp(tmp_path)), "--env-kwargs", *TINY, "--n-envs", "2",
                "--total-timesteps", "20", "--logdir", str(logdir), "--run-name", "r", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = logdir / "r"
    board = tmp_path / "board"
    with lock_folder(folder, "run folder"):  # as its trainer holds it
        assert evaluate_cli.main([str(folder), "--no-progress", "--no-video"]) == 0
        assert evaluate_cli.main(["--compare", str(folder), "--out", str(board), "--no-progress", "--no-video"]) == 0
    assert "**still training** (process" in (folder / "eval.md").read_text()
    assert "still training (process" in (board / "leaderboard.md").read_text()
    assert evaluate_cli.main(["--compare", str(folder), "--out", str(board), "--no-progress", "--no-video"]) == 0
    assert "still training" not in (board / "leaderboard.md").read_text()  # finished now: no longer marked

