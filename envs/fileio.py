"""File helpers shared by the envs (feature stores) and the agents (run folders); standard library only."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, fill: str = "-") -> str:
    """``text`` with every run of characters other than letters, digits, ``_``, ``.`` and ``-`` replaced by
    ``fill``, so it can be part of a file name (``sb3_contrib:TRPO`` -> ``sb3_contrib-TRPO``)."""
    return _UNSAFE.sub(fill, text)


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write ``data`` as indented JSON so that a reader, or a crash, never leaves half a file: the text goes to a
    temporary file that is synced and then renamed over ``path``. Values JSON cannot hold are written as ``str``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
