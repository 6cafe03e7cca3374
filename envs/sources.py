"""Feature sources: where an environment's clips come from (a feature store or the synthetic generator).

Every method takes *batches* (numpy arrays of clip numbers, frames and cells) so the single env and
the batched vector env share one code path. A clip number is an index into the chosen subset
(0 .. ``num_clips - 1``), not a store row.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from envs.periphery import motion
from envs.store import CORE_FILE, UNUSED, FeatureStore, StoreFormatError

#: Short aliases a user may pass as ``subset`` for ActivityNet, whose own names are training/validation
#: (testing labels are withheld, so its validation set is the test set).
ACTIVITYNET_SUBSET_ALIASES = {"train": "training", "test": "validation"}


class InvalidFeaturesError(ValueError):
    """Features read from a source contain NaN or inf."""


class FeatureSource(ABC):
    """The clips of one subset, served a glimpse, a frame or a core mask at a time, in batches."""

    class_names: list[str]
    frames: int
    grid: int
    feature_dim: int
    num_clips: int
    #: True when the data annotates the ground-truth action core (focus accuracy is defined).
    has_core: bool = False
    #: A short description used in error messages and ``repr``.
    description: str = ""
    #: k, values per cell of the periphery this source serves (0: none; ``envs.periphery``).
    periphery_dim: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def labels(self, clips: np.ndarray) -> np.ndarray:
        """Primary (first) label of each clip, int64 (B,)."""

    @abstractmethod
    def is_correct(self, clips: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Whether each predicted class is one of its clip's labels, bool (B,)."""

    @abstractmethod
    def video_ids(self, clips: np.ndarray) -> np.ndarray:
        """Video id of each clip, object array of str (B,)."""

    @abstractmethod
    def glimpse(self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """The cell ``cells[b]`` (row-major on the K x K grid) of frame ``frames[b]``: (B, D)."""

    @abstractmethod
    def cube(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Whole frames: (B, K, K, D)."""

    def core_mask(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray | None:
        """Ground-truth core cells of each frame, bool (B, K*K); None where the data has no core."""
        return None

    def glimpse_on_core(
        self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``glimpse(...)`` and whether each cell lies on the core (None without annotation)."""
        mask = self.core_mask(clips, frames)
        on_core = None if mask is None else mask[np.arange(len(cells)), cells]
        return self.glimpse(clips, frames, cells), on_core

    def periphery(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """The peripheral view of whole frames (``envs.periphery``): (B, K, K, k)."""
        raise NotImplementedError(f"{self.description} serves no periphery (periphery_dim=0)")

    def motion(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """The motion periphery of whole frames (``envs.periphery.motion``, zero at frame 0): (B, K, K, k).

        This default computes it from the frames and the frames before; stores read it from ``motion.npy``.
        """
        if not self.periphery_dim:
            raise NotImplementedError(f"{self.description} serves no periphery (periphery_dim=0)")
        frames = np.asarray(frames)
        now, before = self.cube(clips, frames), self.cube(clips, np.maximum(frames - 1, 0))
        return motion(now, before, self.periphery_dim).astype(now.dtype, copy=False)

    def one_motion(self, clip: int, frame: int) -> np.ndarray:
        """The motion periphery (K, K, k) of one frame."""
        return self.motion(np.array([clip]), np.array([frame]))[0]

    def glimpse_on_core_periphery(
        self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``glimpse_on_core(...)`` and the frames' ``periphery`` (sources may share work between them)."""
        return (*self.glimpse_on_core(clips, frames, cells), self.periphery(clips, frames))

    def one_periphery(self, clip: int, frame: int) -> np.ndarray:
        """The periphery (K, K, k) of one frame."""
        return self.periphery(np.array([clip]), np.array([frame]))[0]

    def source_video(self, clip: int) -> tuple[str, list[float]] | None:
        """Path of the clip's readable source video and its sampled timestamps (s), if known."""
        return None

    def identity(self) -> dict[str, Any]:
        """What the features are (shape, classes, how they were made): a trained model fits only these."""
        return {"class_names": list(self.class_names), "frames": int(self.frames), "grid": int(self.grid),
                "feature_dim": int(self.feature_dim)}

    # One-clip access for the single env, where numpy's per-call overhead on batches of one would
    # dominate a step. Defaults go through the batched methods; sources override them for speed.
    def label_set(self, clip: int) -> frozenset[int]:
        """All labels of one clip."""
        mask = self.is_correct(np.full(self.num_classes, clip), np.arange(self.num_classes))
        return frozenset(np.nonzero(mask)[0].tolist())

    def one_glimpse(self, clip: int, frame: int, cell: int) -> tuple[np.ndarray, bool | None]:
        """One cell (D,) of one frame, and whether it lies on the core (None without annotation)."""
        glimpse, on_core = self.glimpse_on_core(np.array([clip]), np.array([frame]), np.array([cell]))
        return glimpse[0], None if on_core is None else bool(on_core[0])

    def one_cube(self, clip: int, frame: int) -> np.ndarray:
        """One whole frame (K, K, D)."""
        return self.cube(np.array([clip]), np.array([frame]))[0]


@cache
def _float16_to_float32() -> np.ndarray:
    """Every float16 bit pattern's float32 value (256 KB)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def widen(values: np.ndarray, dtype: np.dtype, unsigned_finite: bool = False) -> np.ndarray:
    """Stored float16 features as a new ``dtype`` array.

    numpy's float16 -> float32 cast is not vectorised (about 8 ns a value here: the whole cost of a cube step).
    Faster, numpy-only: a gather through a table of every float16 bit pattern (~6x), or, for values known
    finite and without a sign bit (``unsigned_finite``: ReLU features, checked once per clip), the bit
    pattern shifted into float32 position and rescaled by 2**112, which is exact for normal and subnormal
    values alike (~25x).
    """
    if values.dtype != np.float16 or dtype != np.float32:
        return np.array(values, dtype=dtype)  # a copy: never hand out a view of the memory-mapped file
    bits = np.ascontiguousarray(values).view(np.uint16)
    if not unsigned_finite:
        return np.take(_float16_to_float32(), bits)
    out = bits.astype(np.uint32)
    out <<= 13  # exponent and mantissa into float32 position; exponent bias 15 -> 127 by the product below
    wide = out.view(np.float32)
    wide *= np.float32(2.0**112)
    return wide


def clip_flags(block: np.ndarray) -> tuple[np.ndarray, bool]:
    """Of a float16 (T, ...) block: which frames hold NaN or inf (bool (T,)) and whether any value has its sign
    bit set, from the bit patterns (exponent all ones = not finite), ~10x faster than ``np.isfinite``."""
    bits = np.ascontiguousarray(block).view(np.uint16).reshape(len(block), -1)
    return (bits & 0x7FFF).max(axis=1) >= 0x7C00, bool(bits.max() >= 0x8000)


CORRUPT_HINT = ("The feature store is corrupt: re-extract it with `python -m feature_extractors` (it refuses to "
                "write non-finite features).")


def check_periphery(values: np.ndarray, store: FeatureStore, clips: np.ndarray) -> np.ndarray:
    """Raise ``InvalidFeaturesError`` (with the fix) if a store's periphery holds NaN or inf."""
    if not np.isfinite(values).all():
        raise InvalidFeaturesError(
            f"NaN or inf in the periphery of the store at '{store.path}' (clips {clips.tolist()[:4]}): "
            f"recompute it with `python -m feature_extractors add-periphery --store {store.path}`."
        )
    return values


class StoreSource(FeatureSource):
    """The clips of one subset (and split) of a feature store on disk."""

    def __init__(
        self,
        store: FeatureStore,
        subset: str,
        split: int | str | None = None,
        dtype: np.dtype | type = np.float32,
        classes: Sequence[str] | str | None = None,
        max_classes: int | None = None,
        periphery_dim: int = 0,
        with_motion: bool = False,
    ) -> None:
        self.store = store
        self.dtype = np.dtype(dtype)
        self.periphery_dim = int(periphery_dim)
        # Checked before anything else: an old store opened in glimpse mode says how to upgrade it.
        self._periphery = store.open_periphery(self.periphery_dim) if self.periphery_dim else None
        self._motion = store.open_motion(self.periphery_dim) if self.periphery_dim and with_motion else None
        splits = store.splits
        if splits:
            if split is None:
                split = splits[0]
            if str(split) not in splits:
                raise ValueError(
                    f"unknown split {split!r} for the store at '{store.path}': it has splits "
                    f"{', '.join(splits)}. Pass split=<one of them>."
                )
            split = str(split)
        elif split is not None:
            raise ValueError(
                f"split={split!r} was given, but the store at '{store.path}' has a single partition "
                f"(subsets {', '.join(store.subsets)}). Leave split out."
            )
        if subset not in store.subsets or subset == UNUSED:
            raise ValueError(
                f"unknown subset {subset!r} for the store at '{store.path}': choose one of "
                f"{', '.join(store.subsets)}."
            )
        kept = select_classes(store, classes, max_classes)
        new_label = {old: new for new, old in enumerate(kept)}  # store label -> label 0..n-1 of the subset
        chosen, clip_labels = [], []
        for i, r in enumerate(store.records):
            mine = [new_label[k] for k in r.labels if k in new_label]
            if r.subset_in(split) == subset and mine:
                chosen.append(i)
                clip_labels.append(mine)
        if not chosen:
            present = sorted({r.subset_in(split) for r in store.records} - {UNUSED})
            raise StoreFormatError(
                f"the store at '{store.path}' has no clips in subset {subset!r}"
                + (f" of split {split}" if split else "")
                + (f" with classes {', '.join(store.class_names[k] for k in kept)}"
                   if len(kept) < len(store.class_names) else "")
                + f" (its clips are in: {', '.join(present) or 'none'}). "
                + ("Check the split files given to the extractor, or choose other classes." if split else
                   "Pass subset=<one of those>, or give the extractor clips of this subset (a video list's third "
                   "column, train or test).")
            )
        self._records = [store.records[i] for i in chosen]
        self._clip_labels = clip_labels  # labels of each clip in the subset's numbering
        self._rows = store.rows[chosen]
        self.class_names = [store.class_names[k] for k in kept]
        self.frames, self.grid, self.feature_dim = store.frames, store.grid, store.feature_dim
        self.num_clips = len(chosen)
        labels = np.zeros((self.num_clips, self.num_classes), dtype=bool)
        for i, mine in enumerate(clip_labels):
            labels[i, mine] = True
        self._label_matrix = labels
        self._primary = np.array([mine[0] for mine in clip_labels], dtype=np.int64)
        self._ids = np.array([r.video_id for r in self._records], dtype=object)
        core_path = store.path / CORE_FILE
        self._core = np.load(core_path, mmap_mode="r") if core_path.exists() else None
        self.has_core = self._core is not None
        self.description = f"store '{store.path}' ({subset}" + (f", split {split})" if split else ")")
        # per clip: features checked finite / holding negative values (check_clips)
        self._finite = np.zeros(self.num_clips, dtype=bool)
        self._signed = np.zeros(self.num_clips, dtype=bool)

    def labels(self, clips: np.ndarray) -> np.ndarray:
        return self._primary[clips]

    def is_correct(self, clips: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        return self._label_matrix[clips, predictions]

    def video_ids(self, clips: np.ndarray) -> np.ndarray:
        return self._ids[clips]

    def check_clips(self, clips: np.ndarray) -> bool:
        """Raise ``InvalidFeaturesError`` naming the clip if any of ``clips`` holds NaN or inf; returns whether
        they are all free of negative values too (for :func:`widen`).

        Each clip's whole (T, K, K, D) block is scanned once, the first time it is read, and remembered:
        a per-read scan would cost as much as the read itself, at every step.
        """
        known = self._finite[clips]
        if known.all():
            return not self._signed[clips].any()
        for clip in np.unique(clips[~known]).tolist():
            row = int(self._rows[clip])
            bad, self._signed[clip] = clip_flags(self.store.features[row])
            if bad.any():
                raise InvalidFeaturesError(
                    f"NaN or inf in the features of {self.description}: clip {clip} (video '{self._ids[clip]}', "
                    f"store row {row}), first in frame {int(np.argmax(bad))}. {CORRUPT_HINT}")
            self._finite[clip] = True
        return not self._signed[clips].any()

    def glimpse(self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray) -> np.ndarray:
        unsigned = self.check_clips(clips)
        rows, cols = np.divmod(cells, self.grid)
        return widen(self.store.features[self._rows[clips], frames, rows, cols], self.dtype, unsigned)

    def cube(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        unsigned = self.check_clips(clips)
        return widen(self.store.features[self._rows[clips], frames], self.dtype, unsigned)

    def _read_view(self, view: np.ndarray, clips: np.ndarray | int, frames: np.ndarray | int) -> np.ndarray:
        """Frames of a per-cell summary file (periphery or motion periphery), checked and widened."""
        values = view[self._rows[clips], frames]
        return check_periphery(values, self.store, np.atleast_1d(clips)).astype(self.dtype)

    def periphery(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        if self._periphery is None:
            return super().periphery(clips, frames)
        return self._read_view(self._periphery, clips, frames)

    def one_periphery(self, clip: int, frame: int) -> np.ndarray:
        if self._periphery is None:
            return super().one_periphery(clip, frame)
        return self._read_view(self._periphery, clip, frame)

    def motion(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        if self._motion is None:
            return super().motion(clips, frames)
        return self._read_view(self._motion, clips, frames)

    def one_motion(self, clip: int, frame: int) -> np.ndarray:
        if self._motion is None:
            return super().one_motion(clip, frame)
        return self._read_view(self._motion, clip, frame)

    def core_mask(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray | None:
        if self._core is None:
            return None
        return np.asarray(self._core[self._rows[clips], frames], dtype=bool)

    def label_set(self, clip: int) -> frozenset[int]:
        return frozenset(self._clip_labels[clip])

    def identity(self) -> dict[str, Any]:
        meta = self.store.meta
        return {**super().identity(), "weights": meta.get("weights"), "backbone": meta.get("backbone")}

    def one_glimpse(self, clip: int, frame: int, cell: int) -> tuple[np.ndarray, bool | None]:
        if not self._finite[clip]:
            self.check_clips(np.array([clip]))
        r, c = divmod(cell, self.grid)
        row = self._rows[clip]
        on_core = None if self._core is None else bool(self._core[row, frame, cell])
        return widen(self.store.features[row, frame, r, c], self.dtype, not self._signed[clip]), on_core

    def one_cube(self, clip: int, frame: int) -> np.ndarray:
        if not self._finite[clip]:
            self.check_clips(np.array([clip]))
        return widen(self.store.features[self._rows[clip], frame], self.dtype, not self._signed[clip])

    def source_video(self, clip: int) -> tuple[str, list[float]] | None:
        record = self._records[clip]
        if record.source and record.timestamps and os.path.exists(record.source):
            return record.source, record.timestamps
        return None


def select_classes(store: FeatureStore, classes: Sequence[str] | str | None, max_classes: int | None) -> list[int]:
    """Store labels of a class subset, in the store's order: ``classes`` by name (a list, or one string of
    comma-separated names), or the first ``max_classes``; all classes when both are None."""
    names = store.class_names
    where = f"the store at '{store.path}'"
    if classes is not None and max_classes is not None:
        raise ValueError(f"give classes=[...] or max_classes=N, not both (for {where})")
    if max_classes is not None:
        if isinstance(max_classes, bool) or not isinstance(max_classes, int) or not 1 <= max_classes <= len(names):
            raise ValueError(f"max_classes={max_classes!r} but {where} has {len(names)} classes: "
                             f"pass max_classes=1..{len(names)} (classes: {', '.join(names)})")
        return list(range(max_classes))
    if classes is None:
        return list(range(len(names)))
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if isinstance(classes, str) else list(classes)
    if not wanted:
        raise ValueError(f"classes={classes!r} is empty: name at least one class of {where} "
                         f"(it has {', '.join(names)})")
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ValueError(f"unknown class(es) {', '.join(map(repr, unknown))} for {where}; "
                         f"it has {', '.join(names)}")
    return sorted({names.index(c) for c in wanted})


DATASETS = ("synthetic", "hmdb51", "activitynet", "store")
DEFAULT_DATA_DIRS = {"hmdb51": "data/hmdb51", "activitynet": "data/activitynet"}


def resolve_data_root(dataset: str, data_root: str | None) -> Path:
    """``data_root`` if given, else the dataset's default under ``$GLIMPSE_DATA`` (or the cwd)."""
    if data_root is not None:
        return Path(data_root).expanduser()
    if dataset not in DEFAULT_DATA_DIRS:
        raise ValueError(
            f"data_root is required for the '{dataset}' dataset: pass data_root=<feature store folder> "
            "(built with `python -m feature_extractors videos ...`)."
        )
    return Path(os.environ.get("GLIMPSE_DATA", ".")) / DEFAULT_DATA_DIRS[dataset]
