"""Small feature stores written by the tests (no downloads): HMDB-51-like, ActivityNet-like, generic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from envs.store import ClipRecord, write_store

FRAMES, GRID, DIM = 4, 7, 8


def random_features(n: int, seed: int = 0, frames: int = FRAMES, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(n, frames, GRID, GRID, dim)), 0).astype(np.float16)


def hmdb_like_store(path: Path, classes: int = 3, per_class: int = 4) -> Path:
    """Three splits; in split s, clip i of each class is test when (i + s) % per_class == 0."""
    records = []
    for c in range(classes):
        for i in range(per_class):
            subset = {str(s): "test" if (i + s) % per_class == 0 else "train" for s in (1, 2, 3)}
            if i == per_class - 1:
                subset["3"] = "unused"
            records.append(ClipRecord(video_id=f"class{c}_clip{i}.avi", labels=[c], subset=subset, valid_frames=FRAMES))
    names = [f"action_{c}" for c in range(classes)]
    return write_store(path, random_features(len(records)), records, names, settings={"weights": "random-init"},
                       splits=["1", "2", "3"])


def activitynet_like_store(path: Path) -> Path:
    """Training and validation videos; one video has two labels."""
    records = [
        ClipRecord("v_a", [0], "training", segments=[[0.0, 5.0, 0]]),
        ClipRecord("v_b", [1, 2], "training", segments=[[0.0, 2.0, 1], [3.0, 6.0, 2]]),
        ClipRecord("v_c", [2], "training"),
        ClipRecord("v_d", [0, 1], "validation"),
        ClipRecord("v_e", [2], "validation"),
    ]
    return write_store(path, random_features(len(records), seed=1), records, ["cook", "dance", "swim"],
                       settings={"weights": "random-init"}, subsets=["training", "validation"])


def generic_store(path: Path, n: int = 6, classes: int = 2) -> Path:
    records = [ClipRecord(f"my_{i}", [i % classes], "train" if i < n - 2 else "test") for i in range(n)]
    return write_store(path, random_features(n, seed=2), records, [f"c{k}" for k in range(classes)],
                       settings={"weights": "random-init"})
