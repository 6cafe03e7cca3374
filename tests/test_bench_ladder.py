"""bench/bench_ladder.py: one tiny cell of the ladder through the script, and its table and target logic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_ladder  # noqa: E402

pytestmark = pytest.mark.slow  # runs the ladder bench

EASY, MEDIUM, HARD, TOP = ("SyntheticGlimpse-Easy-v0", "SyntheticGlimpse-Medium-v0", "SyntheticGlimpse-Hard-v0",
                           "SyntheticGlimpse-v0")


def test_the_bench_trains_evaluates_and_reports_a_cell(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "bench_ladder.py"), "--out", str(tmp_path), "--rungs", EASY,
           "--algos", "reinforce", "--timesteps", "64", "--jobs", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| `reinforce` | " in proc.stdout and "(25%)" in proc.stdout
    result = json.loads((tmp_path / "ladder.json").read_text())
    assert result["chance"] == {EASY: 0.25} and 0.0 <= result["accuracy"]["reinforce"][EASY] <= 1.0
    assert -1.0 / 3 <= result["learning_curve_skill"]["reinforce"][EASY] <= 1.0  # from the run's evaluations
    assert (tmp_path / "ladder.png").stat().st_size > 0 and (tmp_path / "ladder.md").is_file()


def test_table_and_targets() -> None:
    cells = {"ppo": {EASY: {"accuracy": 0.9}, MEDIUM: {"accuracy": 0.5}},
             "a2c": {EASY: {"accuracy": 0.7}, MEDIUM: {"accuracy": 0.8}},
             "recurrent_ppo": {EASY: {"accuracy": 0.85}}}
    curves = {"ppo": {EASY: 0.8, MEDIUM: 0.3, HARD: 0.0, TOP: -0.01},  # at chance from Hard up
              "a2c": {EASY: 0.5, MEDIUM: 0.6, HARD: 0.1, TOP: 0.0},
              "lstm_ppo": {EASY: 0.99, MEDIUM: 0.97, HARD: 0.6, TOP: 0.1},  # both 100 % at the end, Medium slower
              "recurrent_ppo": {EASY: 0.7, MEDIUM: None, HARD: None, TOP: None}}
    table = bench_ladder.table_markdown(cells, curves, [EASY, MEDIUM], 200_000, 8)
    assert "| `ppo` | 90.0% (25%) | 50.0% (10%) |" in table and "| `ppo` | 0.800 | 0.300 |" in table
    assert "| `recurrent_ppo` | 85.0% (25%) | not run |" in table and "| `recurrent_ppo` | 0.700 | not run |" in table
    checks = bench_ladder.target_checks(cells, curves, [EASY, MEDIUM, HARD, TOP])
    assert f"ppo on {EASY}: 90.0% (meets >= 80%)" in checks and f"a2c on {EASY}: 70.0% (misses >= 80%)" in checks
    ppo = next(c for c in checks if c.startswith("ppo:"))
    assert "0.800, 0.300, 0.000, -0.010 -> harder every rung up" in ppo and "1 pair(s) cannot order" in ppo
    assert any(c.startswith("lstm_ppo:") and c.endswith("-> harder every rung up") for c in checks)
    assert any(c.startswith("a2c:") and "NOT strictly harder" in c for c in checks)
    assert not any(c.startswith("recurrent_ppo:") for c in checks)  # not run on every rung: no verdict
    assert abs(bench_ladder.skill(0.55, MEDIUM) - 0.5) < 1e-12
    assert bench_ladder.rung_label(EASY) == "Easy" and bench_ladder.rung_label("SyntheticGlimpse-v0").startswith("v0")
