"""Safe writes to shared folders: one writer per folder, and atomic replaces under unique temporary names.

A run folder or a feature store has one writer at a time. :func:`lock_folder` takes an exclusive
``fcntl.flock`` on ``<folder>/.lock`` and writes the holder's pid into it. The OS drops the lock when the
holder's last descriptor closes, so a process killed with ``kill -9`` never leaves a stale lock behind; a
second writer is refused at once with a one-line :class:`FolderInUseError` naming the folder and the pid.

:func:`replace_atomically` writes a file beside its target under a temporary name unique to the writer
(two processes never share one) and moves it into place, so a reader sees the old file or the new one.
:func:`write_json_atomic` and :func:`safe_name` are the one JSON writer and the one file-name sanitizer of the
envs (feature stores) and the agents (run folders). This module needs the standard library only (``envs``
must not import torch).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from pathlib import Path
from typing import IO, Any

LOCK_FILE = ".lock"
TMP_SUFFIX = ".tmp"


class FolderInUseError(RuntimeError):
    """Another live process holds the folder's write lock."""


def _command_of(pid: int) -> str:
    """The command line of ``pid`` (Linux ``/proc``), shortened; empty where unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= 100 else text[:97] + "..."


def _describe_holder(pid: int | None) -> str:
    if pid is None:
        return "another process"
    command = _command_of(pid)
    return f"process {pid}" + (f" ({command})" if command else "")


def _read_pid(handle: IO[str]) -> int | None:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else None


def _in_use(folder: Path, what: str, pid: int | None) -> FolderInUseError:
    return FolderInUseError(
        f"{what} '{folder}' is being written by {_describe_holder(pid)}: one writer at a time. Wait for it "
        "to finish (or stop it), then run this command again."
    )


class FolderLock:
    """The held write lock of one folder; :meth:`release` (or garbage collection, or the process's death) drops it."""

    def __init__(self, folder: Path, handle: IO[str]) -> None:
        self.folder = folder
        self._handle: IO[str] | None = handle

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_folder(folder: str | os.PathLike[str], what: str = "folder") -> FolderLock:
    """Take the write lock of ``folder`` (which must exist), or raise :class:`FolderInUseError`.

    ``what`` names the folder's kind in the message ("run folder", "feature store").
    """
    folder = Path(folder)
    # Opened without truncating: the file may hold the live holder's pid, read below when refused.
    handle = open(folder / LOCK_FILE, "a+")  # held open for as long as the lock is held
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(handle)
        handle.close()
        raise _in_use(folder, what, holder) from None
    except BaseException:
        handle.close()
        raise
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return FolderLock(folder, handle)


def lock_holder(folder: str | os.PathLike[str]) -> int | None:
    """The pid of the live process holding ``folder``'s write lock (0 when its pid is unknown), else None.

    Reads only: a probe never creates the lock file and never blocks the holder.
    """
    path = Path(folder) / LOCK_FILE
    try:
        handle = open(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(handle)
            return 0 if pid is None else pid
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None


def refuse_if_locked(folder: str | os.PathLike[str], what: str = "folder") -> None:
    """Raise :class:`FolderInUseError` if a live process holds ``folder``'s write lock (a check before slow work;
    the writer still takes the lock itself)."""
    pid = lock_holder(folder)
    if pid is not None:
        raise _in_use(Path(folder), what, pid or None)


def temp_path(target: str | os.PathLike[str]) -> Path:
    """A new empty file beside ``target``, named ``.<target name>.<unique>.tmp``, for this writer alone."""
    target = Path(target)
    while True:
        path = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:  # O_EXCL: never someone else's file; mode 0o666 under the umask, like any file the writer makes
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def temp_files_of(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files that :func:`temp_path` made for ``target`` (left behind by a killed writer)."""
    target = Path(target)
    return sorted(target.parent.glob(f".{target.name}.*{TMP_SUFFIX}"))


def replace_atomically(target: str | os.PathLike[str], data: str | bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``target`` so that a reader sees either the old file or the whole new one."""
    target = Path(target)
    tmp = temp_path(target)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON with :func:`replace_atomically` (synced): a reader, a crash or a second
    writer never leaves half a file. Values JSON cannot hold are written as ``str``."""
    replace_atomically(path, json.dumps(data, indent=2, default=str) + "\n", fsync=True)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, fill: str = "-") -> str:
    """``text`` with every run of characters other than letters, digits, ``_``, ``.`` and ``-`` replaced by
    ``fill``, so it can be part of a file name (``sb3_contrib:TRPO`` -> ``sb3_contrib-TRPO``)."""
    return _UNSAFE.sub(fill, text)
