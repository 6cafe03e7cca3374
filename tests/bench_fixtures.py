"""What the bench tests share: running a bench script or a package module as a user would, and the tiny rendered
videos and feature stores they run on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A bench runs as a script: its imports must find this checkout's packages, not an installed copy.
SCRIPT_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_python(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` with this checkout's packages, its output captured."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=SCRIPT_ENV, capture_output=True, text=True,
                          timeout=timeout)


def render_tiny(root: Path, *options: str) -> Path:
    """Render 2 classes x 3 clips of 3 frames in the HMDB-51 layout into ``root / "videos"``; returns it."""
    out = root / "videos"
    done = run_python("-m", "feature_extractors", "render", "--layout", "hmdb51", "--out", str(out), "--classes",
                      "2", "--clips-per-class", "3", "--frames", "3", "--no-progress", *options, cwd=root)
    assert done.returncode == 0, done.stderr
    return out


def extract_tiny(videos: Path, out: Path, *options: str) -> Path:
    """Extract a store of :func:`render_tiny`'s ``videos`` (3 frames at 10 fps, random weights) into ``out``."""
    done = run_python("-m", "feature_extractors", "hmdb51", "--videos", str(videos / "videos"), "--splits",
                      str(videos / "splits"), "--actors", str(videos / "actors.json"), "--frames", "3", "--fps", "10",
                      "--weights", "random", "--workers", "0", "--no-progress", *options, "--out", str(out),
                      cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out
