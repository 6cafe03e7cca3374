"""The feature store: the project's only on-disk format (docs/data.md).

A store is a folder::

    features.npy    float16 (N, T, K, K, D): per clip, T frames of a K x K grid of D-dim cells
                    (GoogLeNet ``inception5b``: K = 7, D = 1024). Opened with ``mmap_mode="r"``, so a
                    glimpse is one contiguous read of D values.
    index.jsonl     one JSON object per clip row (row i describes ``features[i]``), see ``ClipRecord``.
    meta.json       class names, backbone / layer, weights identity, input size, T, sampling rate,
                    format version, and ``complete`` (true once every row is written or failed).
    done.jsonl      completion log written while extracting: one line per finished row, appended only
                    after the row's features are flushed, so a killed run never leaves a half clip
                    that counts as done. ``StoreWriter`` resumes from it.
    failures.jsonl  rows that could not be extracted, with the reason (never counted as clips).
    .lock           the write lock (``envs.files``): one extraction, merge or upgrade writes a store at a time.
    core.npy        optional, bool (N, T, K*K): the ground-truth action core of each frame, where the
                    data has one (the exported synthetic benchmark, or a video dataset extracted with
                    actor boxes: the cells each sampled frame's actor box covers), for focus accuracy and
                    the ``oracle`` baseline.
    periphery.npy   float16 (N, T, K, K, k): the peripheral view of every cell (``envs.periphery``),
                    written with each clip; ``meta.json`` records its transform and k. Stores written
                    before it existed get it with ``python -m feature_extractors add-periphery --store DIR``.
    motion.npy      float16 (N, T, K, K, k): the motion periphery of every cell (``envs.periphery.motion``:
                    group means of the change since the previous frame; zero at frame 0), written beside
                    periphery.npy, read by envs made with ``periphery_motion=True``.

Feature extraction (``python -m feature_extractors``) writes stores with ``StoreWriter``; the
environments read them with ``FeatureStore``. Both live here so the format has one definition.
Every file is validated where it is read: a damaged line or field is a one-line ``StoreFormatError``
naming the file, the line and the fix. This module needs numpy only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.files import (
    LOCK_FILE,
    FolderLock,
    lock_folder,
    replace_atomically,
    temp_files_of,
    temp_path,
    write_json_atomic,
)
from envs.periphery import (
    GLANCE_TRANSFORMS,
    MOTION_TRANSFORM,
    PERIPHERY_TRANSFORM,
    clip_motion,
    default_periphery_dim,
    periphery,
)

FORMAT_VERSION = 1
FEATURES_FILE = "features.npy"
INDEX_FILE = "index.jsonl"
META_FILE = "meta.json"
DONE_FILE = "done.jsonl"
FAILURES_FILE = "failures.jsonl"
CORE_FILE = "core.npy"
PERIPHERY_FILE = "periphery.npy"
#: ``meta.json`` keys of what a cell is (full frame or crop) and its network cost; older stores lack them.
CELL_KEYS = ("cells", "crop_size", "cnn_flops_per_cell", "cnn_flops_per_frame")
#: ``meta.json`` key of the periphery's description; not part of the settings compared on resume (a store
#: begun before the periphery existed resumes and gets one).
PERIPHERY_KEY = "periphery"
MOTION_FILE = "motion.npy"
MOTION_KEY = "motion"
FEATURE_DTYPE = np.float16

#: Names of the subsets a clip can belong to. HMDB-51 uses train/test/unused per split;
#: ActivityNet uses its own subset names; a user's video list uses train/test.
TRAIN, TEST, UNUSED = "train", "test", "unused"

BUILD_HINT = (
    "Build one with `python -m feature_extractors hmdb51|activitynet|videos ... --out <store>` "
    "(see `python -m feature_extractors --help`), or export the synthetic benchmark with "
    "`envs.synthetic.export_synthetic_store(<store>)`."
)


class StoreError(Exception):
    """Base class of feature store problems."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store folder or one of its files does not exist."""


class IncompleteStoreError(StoreError):
    """The store was not finished (an extraction was interrupted)."""


class StoreFormatError(StoreError, ValueError):
    """The store's files disagree with each other or with the format."""


def _repair_hint(store: Path) -> str:
    return (f"Copy the store again from a good copy, or delete '{store}' and run its "
            "`python -m feature_extractors` command again.")


def _damaged(file: Path, where: str, problem: str, fix: str | None = None) -> StoreFormatError:
    """The one-line error of a damaged store file: the file, the line or field, what is wrong, the fix."""
    return StoreFormatError(f"Store '{file.parent}': {file.name} {where} {problem}. {fix or _repair_hint(file.parent)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: ``meta.json`` fields every store has, with a check and the type named in the error.
_META_FIELDS: dict[str, tuple[Any, str]] = {
    "format_version": (_is_int, "an integer"),
    "class_names": (lambda v: _is_str_list(v) and len(v) > 0, "a non-empty list of class names"),
    "num_clips": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "frames": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "grid": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "feature_dim": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "complete": (lambda v: isinstance(v, bool), "true or false"),
}
#: Optional ``meta.json`` fields (absent or null allowed).
_META_OPTIONAL: dict[str, tuple[Any, str]] = {
    "subsets": (_is_str_list, "a list of subset names"),
    "splits": (_is_str_list, "a list of split names"),
    PERIPHERY_KEY: (lambda v: isinstance(v, dict) and isinstance(v.get("transform"), str) and _is_int(v.get("dim"))
                    and v["dim"] > 0, 'an object {"transform": name, "dim": k}'),
}


def read_meta(store: Path) -> dict[str, Any]:
    """``meta.json`` of ``store``, checked field by field (a one-line ``StoreFormatError`` names the field)."""
    file = store / META_FILE
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(file, "is", f"not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise _damaged(file, "is", f"a JSON {type(meta).__name__}, not the object of store settings")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreFormatError(
            f"Store '{store}' has format version {version!r}; this toolkit reads version "
            f"{FORMAT_VERSION}. Re-extract it with this version of `python -m feature_extractors`."
        )
    for key, (ok, kind) in _META_FIELDS.items():
        if key not in meta:
            raise _damaged(file, f"field {key!r}", "is missing")
        if not ok(meta[key]):
            raise _damaged(file, f"field {key!r}", f"is {meta[key]!r}; it must be {kind}")
    for key, (ok, kind) in _META_OPTIONAL.items():
        if meta.get(key) is not None and not ok(meta[key]):
            raise _damaged(file, f"field {key!r}", f"is {meta[key]!r}; it must be {kind} (or null)")
    return meta


def _record_problem(data: Any) -> str | None:
    """What is wrong with one ``index.jsonl`` row (None: nothing)."""
    if not isinstance(data, dict):
        return f"is a JSON {type(data).__name__}, not a clip object"
    for key in ("video_id", "labels", "subset"):
        if key not in data:
            return f"has no {key!r}"
    if not isinstance(data["video_id"], str):
        return f"has video_id {data['video_id']!r}; it must be a string"
    labels = data["labels"]
    if not isinstance(labels, list) or not all(_is_int(c) for c in labels):
        return f"has labels {labels!r}; they must be a list of class indices"
    subset = data["subset"]
    if not (isinstance(subset, str) or (isinstance(subset, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in subset.items()))):
        return f"has subset {subset!r}; it must be a subset name or a mapping split -> subset name"
    if data.get("source") is not None and not isinstance(data["source"], str):
        return f"has source {data['source']!r}; it must be a path or null"
    if data.get("timestamps") is not None and not (
            isinstance(data["timestamps"], list) and all(_is_number(t) for t in data["timestamps"])):
        return "has timestamps that are not a list of seconds"
    if data.get("valid_frames") is not None and not _is_int(data["valid_frames"]):
        return f"has valid_frames {data['valid_frames']!r}; it must be an integer"
    segments = data.get("segments", [])
    if not isinstance(segments, list) or not all(
            isinstance(seg, list) and len(seg) == 3 and all(_is_number(v) for v in seg) for seg in segments):
        return "has segments that are not a list of [start_s, end_s, class]"
    return None


@dataclass
class ClipRecord:
    """One row of ``index.jsonl``.

    ``subset`` is either one subset name (``"train"``, ``"test"``, ActivityNet's ``"training"``,
    ``"validation"``...) or, for datasets with several official splits (HMDB-51), a mapping from the
    split name (``"1"``, ``"2"``, ``"3"``) to the subset name (``"train"``, ``"test"``, ``"unused"``).
    ``segments`` holds labelled temporal segments ``[start_s, end_s, class_index]`` of untrimmed videos.
    ``timestamps`` are the sampled frames' times in seconds and ``valid_frames`` counts the frames that
    are real (the rest repeat the last real frame).
    """

    video_id: str
    labels: list[int]
    subset: str | dict[str, str]
    source: str | None = None
    timestamps: list[float] | None = None
    valid_frames: int | None = None
    segments: list[list[float]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipRecord:
        """A record from one index row; ``ValueError`` saying what is wrong with a malformed row."""
        problem = _record_problem(data)
        if problem is not None:
            raise ValueError(f"the row {problem}")
        return cls._of_checked(data)

    @classmethod
    def _of_checked(cls, data: Mapping[str, Any]) -> ClipRecord:
        """A record from a row ``_record_problem`` found nothing wrong with."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def subset_in(self, split: str | None) -> str:
        """The subset this clip belongs to under ``split`` (ignored for single-partition stores)."""
        if isinstance(self.subset, dict):
            if split is None:
                raise StoreFormatError("this store has several splits; pass split=...")
            return self.subset.get(str(split), UNUSED)
        return self.subset


def _read_jsonl(path: Path, fix: str | None = None) -> list[tuple[int, Any]]:
    """(line number, value) of each row of a JSON-lines file; a torn last line (a killed writer) is ignored.
    A line that is not JSON is a one-line ``StoreFormatError`` naming the file, the line and ``fix``."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break  # torn write: the row was never acknowledged
            line = line.strip()
            if not line:
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise _damaged(path, f"line {number}", f"is not valid JSON ({exc.msg}, column {exc.colno})",
                               fix) from None
    return rows


def _read_index(store: Path) -> list[ClipRecord]:
    """The clip records of ``index.jsonl`` (line i + 1 describes row i), each checked."""
    file, records = store / INDEX_FILE, []
    for number, data in _read_jsonl(file):
        problem = _record_problem(data)
        if problem is not None:
            raise _damaged(file, f"line {number} (row {number - 1})", problem)
        records.append(ClipRecord._of_checked(data))
    return records


def _read_row_log(path: Path, num_rows: int, fix: str | None = None) -> list[dict[str, Any]]:
    """The entries of ``done.jsonl`` / ``failures.jsonl``: objects whose ``row`` is a row of the store."""
    entries = []
    for number, data in _read_jsonl(path, fix):
        row = data.get("row") if isinstance(data, dict) else None
        if not _is_int(row) or not 0 <= row < num_rows:
            shown = repr(data)[:200]
            raise _damaged(path, f"line {number}",
                           f"does not name a row of the store (an integer 'row' in [0, {num_rows - 1}]): {shown}", fix)
        entries.append(data)
    return entries


def _log_fix(store: Path, path: Path) -> str:
    """How to repair an extraction's own log: drop the line (the clip is extracted again on resume)."""
    return (f"Delete that line of '{path}' (its clip is then extracted again when the extraction resumes), or "
            f"delete '{store}' and extract again.")


def _drop_torn_tail(path: Path) -> None:
    """Cut a JSON-lines file back to its last complete line (a killed writer may leave half a line)."""
    if not path.exists():
        return
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)


def _append_jsonl(path: Path, row: Mapping[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass(frozen=True)
class PeripheryView:
    """A per-cell summary file written beside ``features.npy``: the periphery, or the motion periphery."""

    file: str
    key: str
    transform: str
    what: str
    without: str
    #: This view of one clip's (T, K, K, D) features at k values per cell: float32 (T, K, K, k).
    of_clip: Callable[[np.ndarray, int], np.ndarray]


PERIPHERY_VIEW = PeripheryView(PERIPHERY_FILE, PERIPHERY_KEY, PERIPHERY_TRANSFORM, "periphery",
                               "pass periphery_dim=0 for the blind glimpse mode", periphery)
MOTION_VIEW = PeripheryView(MOTION_FILE, MOTION_KEY, MOTION_TRANSFORM, "motion periphery",
                            "leave periphery_motion out", clip_motion)
VIEWS = (PERIPHERY_VIEW, MOTION_VIEW)


class FeatureStore:
    """Read-only view of a finished feature store.

    >>> store = FeatureStore("data/hmdb51")          # doctest: +SKIP
    >>> store.features.shape                         # (N, T, K, K, D), float16, memory-mapped
    >>> store.records[0].video_id, store.class_names[store.records[0].labels[0]]

    Raises ``StoreNotFoundError`` for a missing folder or file, ``IncompleteStoreError`` for a store
    whose extraction has not finished, and ``StoreFormatError`` when files disagree (row count,
    class index out of range, unknown format version).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise StoreNotFoundError(f"No feature store at '{self.path}'. {BUILD_HINT}")
        for name in (META_FILE, INDEX_FILE, FEATURES_FILE):
            if not (self.path / name).exists():
                raise StoreNotFoundError(
                    f"'{self.path}' is not a feature store: '{name}' is missing. {BUILD_HINT}"
                )
        self.meta: dict[str, Any] = read_meta(self.path)
        if not self.meta["complete"]:
            done = len(_read_jsonl(self.path / DONE_FILE))
            raise IncompleteStoreError(
                f"Feature store '{self.path}' is incomplete ({done} of {self.meta.get('num_clips')} clips "
                "finished): its extraction was interrupted. Run the same `python -m feature_extractors` "
                "command again to resume it; finished clips are kept."
            )
        self.features: np.ndarray = _open_features(self.path)
        self.class_names: list[str] = list(self.meta["class_names"])
        all_records = _read_index(self.path)
        if len(all_records) != self.features.shape[0]:
            raise StoreFormatError(
                f"Store '{self.path}' is inconsistent: {len(all_records)} index rows but "
                f"{self.features.shape[0]} feature rows. Re-extract it."
            )
        if self.features.ndim != 5 or self.features.shape[2] != self.features.shape[3]:
            raise StoreFormatError(
                f"Store '{self.path}': features.npy has shape {self.features.shape}; expected (N, T, K, K, D)."
            )
        if self.features.dtype != FEATURE_DTYPE:
            raise StoreFormatError(
                f"Store '{self.path}': features.npy is {self.features.dtype}; the format is float16."
            )
        #: Every index row, failed ones included (row i describes ``features[i]``), and the failure log.
        self.all_records: list[ClipRecord] = all_records
        self.failures: list[dict[str, Any]] = _read_row_log(self.path / FAILURES_FILE, len(all_records))
        failed = {int(r["row"]) for r in self.failures}
        #: Row numbers (into ``features``) of the clips that were extracted; failed rows are left out.
        self.rows = np.array([i for i in range(len(all_records)) if i not in failed], dtype=np.int64)
        self.records = [all_records[i] for i in self.rows]
        if not len(self.rows):
            raise StoreFormatError(
                f"Store '{self.path}' holds no extracted clip: all {len(all_records)} failed (reasons in "
                f"'{self.path / FAILURES_FILE}'). Fix or replace those videos, delete '{self.path}' and extract again."
            )
        num_classes = len(self.class_names)
        for row, record in zip(self.rows, self.records, strict=True):
            bad = [c for c in record.labels if not 0 <= int(c) < num_classes]
            if bad or not record.labels:
                raise StoreFormatError(
                    f"Store '{self.path}', index row {row} ({INDEX_FILE} line {row + 1}, video '{record.video_id}'): "
                    f"class index {bad or 'missing'} is out of range for the store's {num_classes} classes. The index "
                    "and meta.json disagree; re-extract the store or fix index.jsonl."
                )

    def add_periphery_hint(self) -> str:
        return f"`python -m feature_extractors add-periphery --store {self.path}`"

    def open_periphery(self, dim: int) -> np.ndarray:
        """The memory-mapped periphery (N, T, K, K, dim), checked against the features and ``dim``.

        Raises ``StoreNotFoundError`` (with the upgrade command) for a store without one and
        ``StoreFormatError`` for a file of another shape, dtype or k. Never modifies the store.
        """
        return self._open_view(PERIPHERY_VIEW, dim)

    def open_motion(self, dim: int) -> np.ndarray:
        """The memory-mapped motion periphery (N, T, K, K, dim), checked like ``open_periphery``."""
        return self._open_view(MOTION_VIEW, dim)

    def _open_view(self, view: PeripheryView, dim: int) -> np.ndarray:
        file = self.path / view.file
        described = self.meta.get(view.key)
        if not file.exists() or described is None:
            raise StoreNotFoundError(
                f"the store at '{self.path}' has no {view.what} ({view.file}; it was written before it existed): add "
                f"it with {self.add_periphery_hint()}, or {view.without}."
            )
        try:
            values = np.load(file, mmap_mode="r")
        except ValueError as exc:
            raise StoreFormatError(
                f"Store '{self.path}': {view.file} is unreadable ({exc}); recompute it with "
                f"{self.add_periphery_hint()}."
            ) from None
        n, t, k = self.features.shape[:3]
        if values.ndim != 5 or values.shape[:4] != (n, t, k, k) or values.dtype != FEATURE_DTYPE:
            raise StoreFormatError(
                f"Store '{self.path}': {view.file} is {values.dtype} {values.shape}; expected float16 "
                f"({n}, {t}, {k}, {k}, k) beside features.npy. Recompute it with {self.add_periphery_hint()}."
            )
        accepted = (view.transform, *GLANCE_TRANSFORMS) if view is PERIPHERY_VIEW else (view.transform,)
        if described.get("transform") not in accepted or values.shape[4] != described.get("dim"):
            raise StoreFormatError(
                f"Store '{self.path}': {view.file} was made by {described.get('transform')!r} with "
                f"k={described.get('dim')} (file k={values.shape[4]}); this toolkit reads {' or '.join(accepted)}. "
                f"Recompute it with {self.add_periphery_hint()}."
            )
        if values.shape[4] != dim:
            raise StoreFormatError(
                f"the store at '{self.path}' holds a {view.what} of k={values.shape[4]} values per cell, but "
                f"periphery_dim={dim} was asked for: pass periphery_dim={values.shape[4]} (or leave it out), or "
                f"recompute it with {self.add_periphery_hint()} --dim {dim}."
            )
        return values

    @property
    def periphery_dim(self) -> int | None:
        """k of the store's periphery as ``meta.json`` records it (None: the store has none)."""
        described = self.meta.get(PERIPHERY_KEY)
        return None if described is None else int(described["dim"])

    @property
    def frames(self) -> int:
        return int(self.features.shape[1])

    @property
    def grid(self) -> int:
        return int(self.features.shape[2])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[4])

    @property
    def splits(self) -> list[str] | None:
        """Split names for stores with several official splits (HMDB-51: ``["1", "2", "3"]``)."""
        return self.meta.get("splits")

    @property
    def subsets(self) -> list[str]:
        return list(self.meta.get("subsets", [TRAIN, TEST]))

    def __len__(self) -> int:
        return len(self.records)


def _open_features(path: Path) -> np.ndarray:
    """``features.npy`` memory-mapped read-only; ``StoreFormatError`` naming the file when it is not a whole
    ``.npy`` (numpy's own message, e.g. "mmap length is greater than file size", names neither)."""
    file = path / FEATURES_FILE
    try:
        with open(file, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            expected = f.tell() + math.prod(shape) * np.dtype(dtype).itemsize
    except (ValueError, OSError, SyntaxError) as exc:
        raise StoreFormatError(
            f"Store '{path}': '{file}' is not a readable .npy file ({exc}). Copy the store again, or re-extract it."
        ) from None
    size = file.stat().st_size
    if size < expected:
        raise StoreFormatError(
            f"Store '{path}': '{file}' is truncated ({size:,} of {expected:,} bytes for features of shape {shape}): "
            "an interrupted copy or a full disk? Copy the store again, or re-extract it."
        )
    return np.load(file, mmap_mode="r")


class StoreWriter:
    """Creates or resumes a feature store, one clip at a time.

    Rows are pre-allocated (the whole clip list is known before extraction starts). A row counts as
    done only after its features are flushed and its line is appended to ``done.jsonl``, so an
    interrupted run resumes with ``StoreWriter.open(path, ...)`` and ``pending_rows()``. Opening a store
    that was written with other settings (``meta`` disagrees on anything but ``complete``) is refused.
    """

    def __init__(self, path: Path, meta: dict[str, Any], records: list[ClipRecord],
                 lock: FolderLock | None = None) -> None:
        self.path = path
        self.meta = meta
        self.records = records
        #: The store's write lock, held until :meth:`close` (or this process ends).
        self.lock = lock
        self.features = np.load(path / FEATURES_FILE, mmap_mode="r+")
        for log in (DONE_FILE, FAILURES_FILE):
            _drop_torn_tail(path / log)
        self.done = {int(r["row"]): r for r in _read_row_log(path / DONE_FILE, len(records),
                                                              _log_fix(path, path / DONE_FILE))}
        self.failed = {int(r["row"]): r for r in _read_row_log(path / FAILURES_FILE, len(records),
                                                                _log_fix(path, path / FAILURES_FILE))}
        n, t, k, _, d = self.features.shape
        #: the periphery comes with each clip (a glance computed from pixels), not from its features
        self.glance = has_glance(meta)
        #: the periphery and the motion periphery, memory-mapped for writing (``VIEWS`` order)
        self.views: list[np.ndarray] = []
        for view in VIEWS:
            supplied = self.glance and view is PERIPHERY_VIEW
            if view.key not in meta or not (path / view.file).exists():
                if supplied and self.done:
                    raise StoreFormatError(
                        f"'{path}' has lost its {view.file} (a pixel glance, which cannot be recomputed from the "
                        f"features); delete '{path}' and extract again."
                    )
                # A new store, or one begun before this view existed: give it one, filled for the rows done.
                dim = meta.get(PERIPHERY_KEY, {}).get("dim") or default_periphery_dim(d, k * k)
                if not supplied:
                    meta[view.key] = {"transform": view.transform, "dim": dim}
                np.lib.format.open_memmap(path / view.file, mode="w+", dtype=FEATURE_DTYPE,
                                          shape=(n, t, k, k, dim)).flush()
                values = np.load(path / view.file, mmap_mode="r+")
                for row in sorted(self.done) if not supplied else ():
                    values[row] = view.of_clip(self.features[row], dim)
                values.flush()
                write_json_atomic(path / META_FILE, meta)
            self.views.append(np.load(path / view.file, mmap_mode="r+"))
        core_file = path / CORE_FILE
        self.core: np.ndarray | None = np.load(core_file, mmap_mode="r+") if core_file.exists() else None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        class_names: Sequence[str],
        records: Sequence[ClipRecord],
        frames: int,
        grid: int = 7,
        feature_dim: int = 1024,
        settings: Mapping[str, Any] | None = None,
        subsets: Sequence[str] = (TRAIN, TEST),
        splits: Sequence[str] | None = None,
        with_core: bool = False,
        glance: Mapping[str, Any] | None = None,
    ) -> StoreWriter:
        """Create the store at ``path``, or reopen it to resume if it was made with the same settings.

        ``settings`` records how the features were made (backbone, layer, weights identity, input
        size, sampling rate...); it lands in ``meta.json`` and must match on resume. ``with_core``
        adds ``core.npy``, filled by ``write_clip(..., core=...)``. ``glance`` (``{"transform": one of
        GLANCE_TRANSFORMS, "dim": k, ...}``) makes the periphery one computed from pixels, given with each
        clip by ``write_clip(..., periphery=...)``, instead of the channel-group means of its features. The
        writer holds the store's write lock until :meth:`close`: a second writer of the same store gets
        ``envs.files.FolderInUseError`` naming the process that holds it.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(path, "feature store")
        try:
            return cls._open_locked(path, lock, class_names=class_names, records=records, frames=frames, grid=grid,
                                    feature_dim=feature_dim, settings=settings, subsets=subsets, splits=splits,
                                    with_core=with_core, glance=glance)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls,
        path: Path,
        lock: FolderLock,
        *,
        class_names: Sequence[str],
        records: Sequence[ClipRecord],
        frames: int,
        grid: int,
        feature_dim: int,
        settings: Mapping[str, Any] | None,
        subsets: Sequence[str],
        splits: Sequence[str] | None,
        with_core: bool,
        glance: Mapping[str, Any] | None,
    ) -> StoreWriter:
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "class_names": list(class_names),
            "num_clips": len(records),
            "frames": frames,
            "grid": grid,
            "feature_dim": feature_dim,
            "subsets": list(subsets),
            "splits": list(splits) if splits is not None else None,
            **dict(settings or {}),
        }
        records = list(records)
        if (path / META_FILE).exists():
            old = read_meta(path)
            old_cmp = {k: v for k, v in old.items() if k not in ("complete", PERIPHERY_KEY, MOTION_KEY)}
            if "cells" not in old and meta.get("cells") == "full":
                # written before the cell kind was recorded: a full-frame store, which resumes as it is
                old_cmp.update({k: meta[k] for k in CELL_KEYS if k in meta})
            if old_cmp != json.loads(json.dumps(meta)):
                diff = sorted(k for k in set(old_cmp) | set(meta) if old_cmp.get(k) != meta.get(k))
                raise StoreFormatError(
                    f"'{path}' already holds a store made with other settings (differs in: "
                    f"{', '.join(diff)}). Use another --out folder, or delete '{path}' to start over."
                )
            # the periphery entry is left out of the settings above (a store may gain one later), but a
            # glance is made with the features: a resume must make the same one
            if (held := _glance_identity(old.get(PERIPHERY_KEY))) != _glance_identity(glance):
                raise StoreFormatError(
                    f"'{path}' already holds a store whose periphery is {held}; "
                    f"this run makes {_glance_identity(glance)}. Use another --out folder, or delete '{path}' to "
                    "start over."
                )
            old_records = _read_index(path)
            if [r.video_id for r in old_records] != [r.video_id for r in records]:
                raise StoreFormatError(
                    f"'{path}' holds a store of a different clip list. Use another --out folder, or "
                    f"delete '{path}' to start over."
                )
            return cls(path, old, old_records, lock)
        shape = (len(records), frames, grid, grid, feature_dim)
        np.lib.format.open_memmap(path / FEATURES_FILE, mode="w+", dtype=FEATURE_DTYPE, shape=shape).flush()
        with open(path / INDEX_FILE, "w") as f:
            f.writelines(r.to_json() + "\n" for r in records)
        if with_core:
            core_shape = (len(records), frames, grid * grid)
            np.lib.format.open_memmap(path / CORE_FILE, mode="w+", dtype=np.bool_, shape=core_shape).flush()
        if glance is not None:
            if glance.get("transform") not in GLANCE_TRANSFORMS:
                raise StoreFormatError(f"glance transform {glance.get('transform')!r}: use one of {GLANCE_TRANSFORMS}")
            meta[PERIPHERY_KEY] = dict(glance)
        meta["complete"] = False
        write_json_atomic(path / META_FILE, meta)
        return cls(path, meta, records, lock)

    def close(self) -> None:
        """Release the store's write lock (the writer is not used afterwards)."""
        if self.lock is not None:
            self.lock.release()

    def pending_rows(self) -> list[int]:
        """Rows neither done nor failed, in order."""
        return [i for i in range(len(self.records)) if i not in self.done and i not in self.failed]

    def write_clip(
        self,
        row: int,
        features: np.ndarray,
        *,
        valid_frames: int | None = None,
        timestamps: Iterable[float] | None = None,
        core: np.ndarray | None = None,
        periphery: np.ndarray | None = None,
    ) -> None:
        """Write one clip's (T, K, K, D) features (and its (T, K*K) core, for a store with one; its (T, K, K, k)
        pixel glance, for a store whose periphery is one); mark the row done."""
        expected = self.features.shape[1:]
        if tuple(features.shape) != tuple(expected):
            raise StoreFormatError(f"clip features have shape {features.shape}; this store takes {expected}")
        if not np.isfinite(features).all():
            raise StoreFormatError(f"clip features of row {row} contain NaN or inf; not written")
        if (periphery is None) == self.glance:
            problem = "no periphery given for a store whose periphery is a pixel glance" if self.glance else (
                "a periphery was given for a store that computes it from the features")
            raise StoreFormatError(f"row {row}: {problem}")
        if periphery is not None and tuple(periphery.shape) != self.views[0].shape[1:]:
            expected = self.views[0].shape[1:]
            raise StoreFormatError(f"clip periphery has shape {periphery.shape}; this store takes {expected}")
        if (core is None) != (self.core is None):
            problem = "a core was given for a store without core.npy" if self.core is None else "no core given"
            raise StoreFormatError(f"row {row}: {problem}")
        if core is not None and tuple(core.shape) != self.core.shape[1:]:
            raise StoreFormatError(f"clip core has shape {core.shape}; this store takes {self.core.shape[1:]}")
        self.features[row] = features.astype(FEATURE_DTYPE, copy=False)
        # From the stored float16 values, so that add-periphery on the same features gives the same files.
        for view, values in zip(VIEWS, self.views, strict=True):
            if view is PERIPHERY_VIEW and periphery is not None:
                values[row] = periphery.astype(FEATURE_DTYPE)
            else:
                values[row] = view.of_clip(self.features[row], values.shape[-1])
        if self.core is not None:
            self.core[row] = core
            self.core.flush()
        self.features.flush()
        for values in self.views:
            values.flush()
        entry: dict[str, Any] = {"row": row}
        if valid_frames is not None:
            entry["valid_frames"] = int(valid_frames)
        if timestamps is not None:
            entry["timestamps"] = [round(float(t), 4) for t in timestamps]
        _append_jsonl(self.path / DONE_FILE, entry)
        self.done[row] = entry

    def mark_failed(self, row: int, reason: str) -> None:
        """Record that a clip could not be extracted; it is left out of the finished store."""
        entry = {"row": row, "video_id": self.records[row].video_id, "reason": reason}
        _append_jsonl(self.path / FAILURES_FILE, entry)
        self.failed[row] = entry

    def finalize(self) -> None:
        """Fold the completion log into the index and mark the store complete."""
        pending = self.pending_rows()
        if pending:
            raise IncompleteStoreError(f"{len(pending)} clips are not written yet (first row {pending[0]})")
        for row, entry in self.done.items():
            record = self.records[row]
            if "valid_frames" in entry:
                record.valid_frames = entry["valid_frames"]
            if "timestamps" in entry:
                record.timestamps = entry["timestamps"]
        replace_atomically(self.path / INDEX_FILE, "".join(r.to_json() + "\n" for r in self.records), fsync=True)
        self.meta["complete"] = True
        write_json_atomic(self.path / META_FILE, self.meta)


def _glance_identity(described: Mapping[str, Any] | None) -> str:
    """What makes a pixel glance: its transform, k and input size ("no pixel glance" for other peripheries)."""
    if described is None or described.get("transform") not in GLANCE_TRANSFORMS:
        return "no pixel glance"
    size = f", {described['size']} px" if described.get("size") is not None else ""
    return f"the glance {described['transform']} (k={described.get('dim')}{size})"


def has_glance(meta: Mapping[str, Any]) -> bool:
    """Whether a store's periphery is a glance computed from pixels at extraction (crop-cell stores)."""
    return meta.get(PERIPHERY_KEY, {}).get("transform") in GLANCE_TRANSFORMS


def remove_store(path: str | os.PathLike[str]) -> None:
    """Delete a store's own files (and its folder if that leaves it empty); other files are left alone."""
    path = Path(path)
    for name in (FEATURES_FILE, INDEX_FILE, META_FILE, DONE_FILE, FAILURES_FILE, CORE_FILE, PERIPHERY_FILE,
                 MOTION_FILE, LOCK_FILE):
        for file in (path / name, *temp_files_of(path / name)):
            file.unlink(missing_ok=True)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def add_periphery(path: str | os.PathLike[str], dim: int | None = None, chunk: int = 64) -> Path:
    """Compute a finished store's ``periphery.npy`` and ``motion.npy`` from its features (the upgrade of an
    old store, or a change of k).

    ``dim`` defaults to ``default_periphery_dim(D)``. Each file is written beside the store under a
    temporary name and moved into place only when complete and finite, so a failure leaves the store as
    it was. Returns the periphery file's path.
    """
    with lock_folder(Path(path), "feature store"):
        return _add_periphery_locked(FeatureStore(path), dim, chunk)


def _add_periphery_locked(store: FeatureStore, dim: int | None, chunk: int) -> Path:
    n, t, k, _, d = store.features.shape
    if has_glance(store.meta):  # the glance stays; the motion periphery takes its k, as the envs read both alike
        glance_dim = int(store.meta[PERIPHERY_KEY]["dim"])
        if dim not in (None, glance_dim):
            raise StoreFormatError(
                f"--dim {dim}: the store at '{store.path}' has a pixel glance of k={glance_dim} as its periphery; "
                f"leave --dim out (or pass {glance_dim})."
            )
        dim = glance_dim
    dim = default_periphery_dim(d, k * k) if dim is None else int(dim)
    if not 1 <= dim <= d:
        raise StoreFormatError(
            f"--dim must lie in [1, {d}] (the feature_dim of the store at '{store.path}'), got {dim}"
        )
    for view in VIEWS:
        if view is PERIPHERY_VIEW and has_glance(store.meta):
            continue  # a pixel glance cannot be recomputed from the features; keep it
        tmp = temp_path(store.path / view.file)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=FEATURE_DTYPE, shape=(n, t, k, k, dim))
        try:
            for start in range(0, n, chunk):
                rows = store.features[start:start + chunk]
                values = np.stack([view.of_clip(clip, dim) for clip in rows])
                if not np.isfinite(values).all():
                    raise StoreFormatError(
                        f"Store '{store.path}': features of rows {start}-{min(start + chunk, n) - 1} give a NaN or "
                        f"inf {view.what} (the features are corrupt); nothing was changed. Re-extract the store."
                    )
                out[start:start + chunk] = values
            out.flush()
            del out
            os.replace(tmp, store.path / view.file)
        finally:
            tmp.unlink(missing_ok=True)
        store.meta[view.key] = {"transform": view.transform, "dim": dim}
        write_json_atomic(store.path / META_FILE, store.meta)
    return store.path / PERIPHERY_FILE


def write_store(
    path: str | os.PathLike[str],
    features: np.ndarray,
    records: Sequence[ClipRecord],
    class_names: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    subsets: Sequence[str] = (TRAIN, TEST),
    splits: Sequence[str] | None = None,
) -> Path:
    """Write a whole in-memory (N, T, K, K, D) array as a finished store (for tests and small data)."""
    _, frames, grid, _, dim = features.shape
    writer = StoreWriter.open(
        path,
        class_names=class_names,
        records=records,
        frames=frames,
        grid=grid,
        feature_dim=dim,
        settings=settings,
        subsets=subsets,
        splits=splits,
    )
    for row in writer.pending_rows():
        writer.write_clip(row, features[row], valid_frames=records[row].valid_frames)
    writer.finalize()
    writer.close()
    return Path(path)
