"""Checking a ``--device`` before anything is built, so a wrong one is a one-line error, not a CUDA traceback."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A torch device that does not exist or is not available on this machine."""


def check_device(device: str) -> str:
    """``device`` unchanged if torch can use it here, else :class:`DeviceError` saying what to pass instead."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(
                f"--device {device}: PyTorch {torch.__version__} sees no CUDA GPU on this machine; use --device cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise DeviceError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {device}: Apple's MPS backend is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {device}: training and evaluation run on cpu, cuda or mps")
    return device


def set_threads(threads: int) -> int:
    """Use ``threads`` torch CPU threads in this process (0: torch's default, one per core); returns the count.

    Every command line sets its threads here. The default of the commands is 1: the networks are small, and
    on a machine shared with other jobs torch's default of one thread per core oversubscribes the cores, which
    slows everything down (and inflates measured latencies many times over).
    """
    if threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: one per core), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
