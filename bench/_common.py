"""What several benches share: the training and evaluation commands, run as package modules from the
repository root, and one training run in its own process (its own torch threads and memory, as on the
command line)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``train_agent.py`` / ``evaluate.py`` as commands of this checkout (cwd ROOT puts its packages first)
TRAIN = [sys.executable, "-m", "agents.training.cli"]
EVALUATE = [sys.executable, "-m", "agents.evaluation.cli"]


def train_run(argv: list[str], what: str) -> float:
    """Train one run with the command line ``argv`` in a subprocess; returns its wall time in seconds, or
    raises RuntimeError with the end of its stderr, naming ``what`` failed."""
    tic = time.monotonic()
    proc = subprocess.run([*TRAIN, *argv], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return time.monotonic() - tic
