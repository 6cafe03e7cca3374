"""bench/bench_train_throughput.py: --env-kwargs reaches the env, and a malformed entry is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = str(ROOT / "bench" / "bench_train_throughput.py")


def test_env_kwargs_reach_the_env(tmp_path: Path) -> None:
    cmd = [sys.executable, BENCH, "--algos", "reinforce", "--steps", "100", "--env-kwargs", "periphery_dim=0"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'periphery_dim': 0" in proc.stdout.splitlines()[0] and "| `reinforce` | " in proc.stdout


def test_a_malformed_env_kwarg_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, BENCH, "--env-kwargs", "periphery_dim"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "malformed --env-kwargs entry 'periphery_dim': expected key=value" in proc.stderr.splitlines()[-1]
