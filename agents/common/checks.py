"""Checks of command-line numbers shared by the commands, made before anything starts.

Each returns None for a good value, else the problem as text that the command prints in its one-line error.
"""

from __future__ import annotations

from typing import Any

#: Seeds are unsigned 32-bit integers: numpy's legacy seeding, Gymnasium's and torch's all accept them.
SEED_LIMIT = 2**32


def seed_problem(flag: str, value: Any) -> str | None:
    """What is wrong with ``value`` as a seed (an int in [0, 2**32)), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{flag} must be an integer seed in [0, {SEED_LIMIT - 1}], got {value!r}"
    if not 0 <= value < SEED_LIMIT:
        return f"{flag} must lie in [0, {SEED_LIMIT - 1}] (an unsigned 32-bit seed), got {value}"
    return None


def count_problem(flag: str, value: Any, least: int = 1) -> str | None:
    """What is wrong with ``value`` as a count of at least ``least`` (steps, clips, envs), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{flag} must be an integer >= {least}, got {value!r}"
    if value < least:
        return f"{flag} must be {'positive' if least == 1 else f'>= {least}'}, got {value}"
    return None
