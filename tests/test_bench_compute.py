"""bench/bench_compute.py on tiny rendered stores: every row trained for each seed, one leaderboard, the table
of the rows' means with the Pareto front, and the figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "bench_compute.py"
# The bench runs as a script: its imports must find this checkout's packages, not an installed copy.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)


def _store(root: Path, name: str, *cells: str) -> Path:
    videos = root / "videos"
    done = _run("-m", "feature_extractors", "hmdb51", "--videos", str(videos / "videos"), "--splits",
                str(videos / "splits"), "--actors", str(videos / "actors.json"), "--frames", "3", "--fps", "10",
                "--weights", "random", "--workers", "0", "--no-progress", *cells, "--out", str(root / name), cwd=root)
    assert done.returncode == 0, done.stderr
    return root / name


@pytest.mark.slow
def test_every_row_and_seed_is_trained_and_the_means_are_ranked_on_one_front(tmp_path: Path) -> None:
    done = _run("-m", "feature_extractors", "render", "--layout", "hmdb51", "--variant", "motion", "--out",
                str(tmp_path / "videos"), "--classes", "2", "--clips-per-class", "3", "--frames", "3",
                "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    full, crop = _store(tmp_path, "full"), _store(tmp_path, "crop", "--cells", "crop")
    logdir = tmp_path / "runs"
    done = _run(str(BENCH), "--full", str(full), "--crop", str(crop), "--costs", "0.5", "--seeds", "0", "1",
                "--total-timesteps", "30", "--workers", "2", "--logdir", str(logdir), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ["full__mean_pool", "full__soft_attention", "full__reinforce_cube", "full__reinforce_glimpse",
            "full__oracle", "crop__reinforce_glimpse", "crop__oracle", "crop__reinforce_exit_0.5"]
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == sorted(f"{r}__s{s}" for r in rows for s in (0, 1))
    table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "GFLOP" not in line]
    assert len(table) == len(rows)
    assert all("failed" not in line for line in table)
    assert "early exit, frame_cost 0.5 | crop |" in done.stdout
    assert "accuracy target" in done.stdout and "Pareto target" in done.stdout
    assert (logdir / "accuracy_vs_compute.png").stat().st_size > 0
    assert (logdir / "leaderboard.json").is_file()
