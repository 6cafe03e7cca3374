"""Joining or starting Ray: the one place that imports ``ray`` for extraction and sweeps.

Nothing here imports Ray at module import time, so the core install (without the ``[ray]`` extra) never
needs it. :func:`init_ray` joins ``address`` (``host:port`` of a head node started with ``ray start --head``,
``auto``, or ``ray://host:10001`` for Ray Client), else ``$RAY_ADDRESS``, else starts a local Ray instance
on this machine with the CPUs and GPUs given. Every failure is a :class:`ClusterError` with a one-line
message that says what to do.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

RAY_PIP = "pip install 'glimpse-attention[ray]'  (or: pip install 'ray[tune]>=2.60' 'rliable>=1.2')"
#: Seconds to wait for a head node's port to answer before giving up.
CONNECT_TIMEOUT_S = 5.0
HEAD_HINT = (
    "start a head node there with `ray start --head --port=6379` (and `ray start --address=HEAD:6379` on "
    "each worker), or leave the address out to run on local Ray"
)


class ClusterError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached (a one-line message with the fix)."""


def import_ray() -> Any:
    """``ray``, or a :class:`ClusterError` naming the pip command."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"Ray is not installed; {RAY_PIP}") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``ray://host:port`` address (None for ``auto`` / ``local``)."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast (bounded wait) when nothing listens at ``address``; Ray itself would retry for a long time."""
    target = _host_port(address)
    if target is None:
        if address not in ("auto", "local"):
            raise ClusterError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto; {HEAD_HINT}.")
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(
            f"no Ray head node answers at {address} ({reason} after <= {timeout:g} s); {HEAD_HINT}."
        ) from None


def init_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> Any:
    """Connect to ``address`` / ``$RAY_ADDRESS``, else start local Ray with ``num_cpus`` / ``num_gpus``.

    Returns the ``ray`` module. Joining a cluster ignores ``num_cpus`` / ``num_gpus`` (the cluster's nodes
    declare their own resources when they are started). A process already connected to Ray (a script
    that called ``ray.init`` itself, a test) keeps that connection.
    """
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return ray
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address and address != "local":
        check_reachable(address)
        try:
            ray.init(address=address, **({} if address.startswith("ray://") else quiet))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(f"cannot join the Ray cluster at {address}: {first}; {HEAD_HINT}.") from None
        return ray
    # "local": a new instance of our own, even where `ray start` left one running on this machine.
    os.environ.pop("RAY_ADDRESS", None)
    # Ray starts its workers at niceness 15; here the workers do the work (trials, the network), and on a
    # machine shared with other jobs a niced trial runs at a fraction of the speed of the same code un-niced.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **quiet)
    return ray


@contextmanager
def ray_session(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> Iterator[Any]:
    """:func:`init_ray` for the duration of a ``with`` block; disconnects only if it connected (a caller that
    already runs Ray, such as a test, keeps its instance)."""
    ray = import_ray()
    started = not ray.is_initialized()
    init_ray(address, num_cpus=num_cpus, num_gpus=num_gpus)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
