"""bench/bench_ladder.py: one tiny cell of the ladder through the script, and its table and target logic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_ladder  # noqa: E402

EASY, MEDIUM = "SyntheticGlimpse-Easy-v0", "SyntheticGlimpse-Medium-v0"


def test_the_bench_trains_evaluates_and_reports_a_cell(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "bench_ladder.py"), "--out", str(tmp_path), "--rungs", EASY,
           "--algos", "reinforce", "--timesteps", "64", "--jobs", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| `reinforce` | " in proc.stdout and "(25%)" in proc.stdout
    result = json.loads((tmp_path / "ladder.json").read_text())
    assert result["chance"] == {EASY: 0.25} and 0.0 <= result["accuracy"]["reinforce"][EASY] <= 1.0
    assert (tmp_path / "ladder.png").stat().st_size > 0 and (tmp_path / "ladder.md").is_file()


def test_table_and_targets() -> None:
    cells = {"ppo": {EASY: {"accuracy": 0.9}, MEDIUM: {"accuracy": 0.5}},
             "a2c": {EASY: {"accuracy": 0.7}, MEDIUM: {"accuracy": 0.8}},
             "recurrent_ppo": {EASY: {"accuracy": 0.85}}}
    table = bench_ladder.table_markdown(cells, [EASY, MEDIUM], 200_000)
    assert "| `ppo` | 90.0% (25%) | 50.0% (10%) |" in table
    assert "| `recurrent_ppo` | 85.0% (25%) | not run |" in table
    checks = bench_ladder.target_checks(cells, [EASY, MEDIUM])
    assert f"ppo on {EASY}: 90.0% (meets >= 80%)" in checks and f"a2c on {EASY}: 70.0% (misses >= 80%)" in checks
    assert any(c.startswith("ppo: skill above chance by rung 0.87, 0.44 -> harder every rung up") for c in checks)
    assert any(c.startswith("a2c:") and "NOT strictly harder" in c for c in checks)
    assert bench_ladder.rung_label(EASY) == "Easy" and bench_ladder.rung_label("SyntheticGlimpse-v0").startswith("v0")
