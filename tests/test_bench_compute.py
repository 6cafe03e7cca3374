"""bench/bench_compute.py on tiny rendered stores: every row trained for each seed, one leaderboard, the table
of the rows' means with the Pareto front, and the figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_fixtures import ROOT, extract_tiny, render_tiny, run_python

BENCH = ROOT / "bench" / "bench_compute.py"


@pytest.mark.slow
def test_every_row_and_seed_is_trained_and_the_means_are_ranked_on_one_front(tmp_path: Path) -> None:
    videos = render_tiny(tmp_path, "--variant", "motion")
    full, crop = extract_tiny(videos, tmp_path / "full"), extract_tiny(videos, tmp_path / "crop", "--cells", "crop")
    logdir = tmp_path / "runs"
    done = run_python(str(BENCH), "--full", str(full), "--crop", str(crop), "--costs", "0.5", "--seeds", "0", "1",
                      "--total-timesteps", "30", "--workers", "2", "--logdir", str(logdir), cwd=tmp_path, timeout=900)
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
