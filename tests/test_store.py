"""The feature store format: write, resume, refuse mixed settings, read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from store_fixtures import random_features

from envs.periphery import PERIPHERY_TRANSFORM, clip_motion, default_periphery_dim, periphery
from envs.sources import InvalidFeaturesError
from envs.store import (
    DONE_FILE,
    MOTION_FILE,
    PERIPHERY_FILE,
    ClipRecord,
    FeatureStore,
    IncompleteStoreError,
    StoreFormatError,
    StoreNotFoundError,
    StoreWriter,
    add_periphery,
    write_store,
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


# -- the peripheral view (envs/periphery.py) beside features.npy --------------------------------------------


def _finished_store(path: Path) -> Path:
    return write_store(path, random_features(4), RECORDS, ["a", "b"], settings={"weights": "random-init"})


def test_writer_stores_the_periphery_of_every_clip(tmp_path: Path) -> None:
    store = FeatureStore(_finished_store(tmp_path / "s"))
    k = default_periphery_dim(8)
    values = store.open_periphery(k)
    assert values.shape == (4, 4, 7, 7, k) and values.dtype == np.float16
    np.testing.assert_array_equal(values, periphery(store.features, k).astype(np.float16))
    assert store.meta["periphery"] == {"transform": PERIPHERY_TRANSFORM, "dim": k}


def _make_old(path: Path) -> None:
    """What a store written before the periphery existed looks like."""
    (path / PERIPHERY_FILE).unlink()
    meta = json.loads((path / "meta.json").read_text())
    del meta["periphery"]
    (path / "meta.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_old_store_says_how_to_upgrade_and_the_command_upgrades_it(tmp_path: Path) -> None:
    path = _finished_store(tmp_path / "s")
    expected = np.load(path / PERIPHERY_FILE)
    expected_motion = np.load(path / MOTION_FILE)
    features = np.load(path / "features.npy")
    np.testing.assert_array_equal(  # written at extraction: each clip's change from frame to frame
        expected_motion, np.stack([clip_motion(f, expected.shape[-1]) for f in features]).astype(np.float16)
    )
    _make_old(path)
    (path / MOTION_FILE).unlink()
    with pytest.raises(StoreNotFoundError) as err:
        gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse")
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert f"python -m feature_extractors add-periphery --store {path}" in message and "periphery_dim=0" in message
    blind = gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse", periphery_dim=0)
    assert "periphery" not in blind.reset(seed=0)[0]  # the blind mode still works on an old store
    done = subprocess.run([sys.executable, "-m", "feature_extractors", "add-periphery", "--store", str(path)],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(path / PERIPHERY_FILE), expected)
    np.testing.assert_array_equal(np.load(path / MOTION_FILE), expected_motion)
    env = gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse")
    assert env.reset(seed=0)[0]["periphery"].shape == (7, 7, default_periphery_dim(8))
    add_periphery(path, dim=3)  # another k on request; the env then asks for that k
    env = gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse")
    assert env.reset(seed=0)[0]["periphery"].shape == (7, 7, 3)
    with pytest.raises(StoreFormatError, match=r"holds a periphery of k=3 .* pass periphery_dim=3"):
        FeatureStore(path).open_periphery(2)


def test_resumed_old_extraction_gets_a_periphery_for_the_rows_done(tmp_path: Path) -> None:
    features = random_features(4)
    writer = _open(tmp_path / "s")
    writer.write_clip(0, features[0])
    writer.close()  # the interrupted extraction ends, and with it its write lock
    _make_old(tmp_path / "s")  # begun before the periphery existed
    writer = _open(tmp_path / "s")
    for row in writer.pending_rows():
        writer.write_clip(row, features[row])
    writer.finalize()
    store = FeatureStore(tmp_path / "s")
    k = default_periphery_dim(8)
    np.testing.assert_array_equal(store.open_periphery(k), periphery(store.features, k).astype(np.float16))


def test_bad_periphery_is_a_one_line_error_and_the_store_is_untouched(tmp_path: Path) -> None:
    path = _finished_store(tmp_path / "s")
    k = default_periphery_dim(8)
    np.save(path / PERIPHERY_FILE, np.zeros((4, 4, 7, 6, k), np.float16))  # wrong shape
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    with pytest.raises(StoreFormatError) as err:
        gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse")
    assert "\n" not in str(err.value) and "(4, 4, 7, 7, k)" in str(err.value) and "add-periphery" in str(err.value)
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before
    bad = periphery(FeatureStore(path).features, k).astype(np.float16)
    bad[1, 2, 3, 4, 0] = np.nan
    np.save(path / PERIPHERY_FILE, bad)
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    env = gym.make_vec("StoreGlimpse-v0", num_envs=3, vectorization_mode="vector_entry_point", data_root=str(path),
                       observation_mode="glimpse")
    with pytest.raises(InvalidFeaturesError) as err:
        for _ in range(5):
            env.reset(seed=0, options={"video_index": [0, 1, 2]})
            for _ in range(4):
                env.step(np.zeros((3, 2), dtype=np.int64))
    assert "\n" not in str(err.value) and "NaN or inf in the periphery" in str(err.value)
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before


def test_add_periphery_refuses_non_finite_features_and_leaves_the_store(tmp_path: Path) -> None:
    path = _finished_store(tmp_path / "s")
    store = FeatureStore(path)
    features = np.load(path / "features.npy", mmap_mode="r+")
    features[2, 0, 0, 0, 0] = np.inf  # corrupted on disk after it was written
    features.flush()
    before = {f.name: f.read_bytes() for f in path.iterdir()}
    with pytest.raises(StoreFormatError, match="nothing was changed"):
        add_periphery(store.path)
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before
