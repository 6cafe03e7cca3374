"""The feature store format: write, resume, refuse mixed settings, read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_fixtures import random_features

from envs.store import (
    DONE_FILE,
    ClipRecord,
    FeatureStore,
    IncompleteStoreError,
    StoreFormatError,
    StoreWriter,
)

RECORDS = [ClipRecord(f"v{i}", [i % 2], "train" if i < 3 else "test") for i in range(4)]


def _open(path: Path, **settings) -> StoreWriter:
    return StoreWriter.open(path, class_names=["a", "b"], records=RECORDS, frames=4, feature_dim=8,
                            settings=settings or {"weights": "random-init"})


def test_written_store_reads_back(tmp_path: Path) -> None:
    features = random_features(4)
    writer = _open(tmp_path / "s")
    for row in writer.pending_rows():
        writer.write_clip(row, features[row], valid_frames=3, timestamps=[0.0, 0.1, 0.2, 0.2])
    writer.finalize()
    store = FeatureStore(tmp_path / "s")
    assert store.features.dtype == np.float16 and store.features.shape == (4, 4, 7, 7, 8)
    assert isinstance(store.features, np.memmap)
    np.testing.assert_array_equal(store.features, features)
    assert [r.video_id for r in store.records] == ["v0", "v1", "v2", "v3"]
    assert store.records[0].valid_frames == 3 and store.records[0].timestamps == [0.0, 0.1, 0.2, 0.2]
    assert store.meta["weights"] == "random-init" and store.meta["complete"]


def test_interrupted_writing_resumes_without_redoing_finished_clips(tmp_path: Path) -> None:
    features = random_features(4)
    writer = _open(tmp_path / "s")
    writer.write_clip(0, features[0])
    writer.write_clip(2, features[2])
    with open(tmp_path / "s" / DONE_FILE, "a") as f:
        f.write('{"row": 3')  # a writer killed mid-line: row 3 never counts as done
    del writer
    with pytest.raises(IncompleteStoreError):
        FeatureStore(tmp_path / "s")
    resumed = _open(tmp_path / "s")
    assert resumed.pending_rows() == [1, 3]
    for row in resumed.pending_rows():
        resumed.write_clip(row, features[row])
    resumed.finalize()
    store = FeatureStore(tmp_path / "s")
    np.testing.assert_array_equal(store.features, features)
    assert sorted(int(line.split(":")[1].split(",")[0].rstrip("}")) for line in
                  (tmp_path / "s" / DONE_FILE).read_text().splitlines()) == [0, 1, 2, 3]


def test_store_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    _open(tmp_path / "s", weights="random-init")
    with pytest.raises(StoreFormatError, match=r"other settings \(differs in: weights\)"):
        _open(tmp_path / "s", weights="imagenet")


def test_failed_clips_are_left_out(tmp_path: Path) -> None:
    writer = _open(tmp_path / "s")
    for row in (0, 1, 3):
        writer.write_clip(row, random_features(1)[0])
    writer.mark_failed(2, "cannot open video")
    writer.finalize()
    store = FeatureStore(tmp_path / "s")
    assert [r.video_id for r in store.records] == ["v0", "v1", "v3"]
    assert store.rows.tolist() == [0, 1, 3]


def test_non_finite_features_are_not_written(tmp_path: Path) -> None:
    writer = _open(tmp_path / "s")
    bad = random_features(1)[0].astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(StoreFormatError, match="NaN"):
        writer.write_clip(0, bad)
    with pytest.raises(StoreFormatError, match="shape"):
        writer.write_clip(0, random_features(1, frames=5)[0])
    assert writer.pending_rows() == [0, 1, 2, 3]
