"""Local Ray for the tests: one small instance per test module, and clean-up of the Ray processes a killed
driver (a subprocess the test started) leaves behind.

A Ray session started by a driver that is killed with SIGKILL leaves a few per-node agents running. Every
subprocess a test starts carries a marker in its environment (``GLIMPSE_TEST_RAY=<token>``), which Ray's
processes inherit; :func:`kill_marked` ends exactly those processes, by id.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "GLIMPSE_TEST_RAY"


def marked_env(token: str) -> dict[str, str]:
    """The environment of a subprocess whose Ray processes :func:`kill_marked` can find again."""
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, MARKER: token, "PYTHONPATH": path, "RAY_DEDUP_LOGS": "0"}


def kill_marked(token: str) -> None:
    """SIGKILL every process whose environment carries ``token`` (left over by a killed driver)."""
    for pid in marked_pids(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@pytest.fixture
def marker() -> Iterator[str]:
    """A fresh marker token; its processes are killed when the test ends."""
    token = uuid.uuid4().hex
    yield token
    kill_marked(token)


def marked_pids(token: str, title: bytes = b"") -> list[int]:
    """Processes whose environment carries ``token`` and whose title starts with ``title``."""
    needle, found = f"{MARKER}={token}".encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and (entry / "cmdline").read_bytes().startswith(
                title
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """One local Ray instance (2 CPUs, no dashboard) for the whole test module; yields the marker token its
    processes carry (for :func:`marked_pids`)."""
    ray = pytest.importorskip("ray")
    token = uuid.uuid4().hex
    os.environ[MARKER] = token  # inherited by the raylet and every worker it starts
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield token
    ray.shutdown()
    del os.environ[MARKER]
    kill_marked(token)
