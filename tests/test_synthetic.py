"""The synthetic benchmark: deterministic, constant memory, calibrated, exportable."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs.ladder import LADDER, calibration_failures, rung_config
from envs.periphery import default_periphery_dim
from envs.sources import StoreSource
from envs.store import FeatureStore
from envs.synthetic import SyntheticConfig, SyntheticSource, calibration_accuracies, export_synthetic_store


@pytest.fixture(scope="module")
def ladder_calibration() -> dict[str, dict[str, float]]:
    """Calibration accuracies of every rung of the ladder (the top one is the default benchmark)."""
    return {rung: calibration_accuracies(rung_config(rung)) for rung in LADDER}


@pytest.mark.slow  # the calibration of every rung: what bench/bench_synthetic_calibration.py measures
def test_default_calibration(ladder_calibration: dict[str, dict[str, float]]) -> None:
    """Attention must matter (docs/environment.md), measured with a nearest-class-mean classifier."""
    acc = ladder_calibration["SyntheticGlimpse-v0"]
    assert rung_config("SyntheticGlimpse-v0") == SyntheticConfig()
    assert acc["oracle"] >= 0.90, acc
    assert acc["all_cells"] <= 0.60, acc
    assert acc["random"] <= 0.40, acc
    # The default periphery alone does not classify, but the cell it marks as salient is the core.
    assert acc["periphery"] <= 0.40, acc
    assert acc["saliency"] >= 0.90 * acc["oracle"], acc


def core_found_by_matched_filter(config: SyntheticConfig, n: int = 300) -> float:
    """Share of frames where the cell best matching the true signature (the ideal linear saliency detector,
    knowing what a learned location head would have to learn) lies on the core."""
    source = SyntheticSource(config, "train")
    table, block = source._table, config.num_classes * config.noise_variants
    signature = table[:block].mean(0) - table[block : 2 * block].mean(0)  # core rows minus distractor rows
    rng = np.random.default_rng(0)
    clips = rng.integers(0, source.num_clips, n)
    frames = rng.integers(0, config.frames, n)
    cells = source.cube(clips, frames).reshape(n, 49, -1)
    std = cells.reshape(-1, cells.shape[-1]).std(0) + 1e-3
    best = ((cells / std**2) @ signature).argmax(-1)
    return float(source.core_mask(clips, frames).reshape(n, 49)[np.arange(n), best].mean())


def test_the_core_stays_findable_at_every_feature_dim() -> None:
    """The evidence and the signature keep their signal-to-noise ratio when D changes (unscaled, a matched
    filter finds the core in 16 % of frames at D = 64 against 77 % at D = 1024), and the calibration holds."""
    found = {d: core_found_by_matched_filter(SyntheticConfig(num_classes=10, feature_dim=d)) for d in (64, 256, 1024)}
    assert min(found.values()) >= 0.6, found
    assert max(found.values()) - min(found.values()) <= 0.25, found
    acc = calibration_accuracies(SyntheticConfig(num_classes=10, feature_dim=64))
    assert acc["oracle"] >= 0.90 and acc["all_cells"] <= 0.60 and acc["random"] <= 0.40, acc


@pytest.mark.slow  # the calibration of every rung: what bench/bench_synthetic_calibration.py measures
def test_ladder_calibration_holds(ladder_calibration: dict[str, dict[str, float]]) -> None:
    """Oracle solves every rung; above the easiest the all-cells average is far below it; rungs get harder."""
    assert calibration_failures(ladder_calibration) == []
    easy = ladder_calibration["SyntheticGlimpse-Easy-v0"]
    assert easy["oracle"] >= 0.95 and easy["all_cells"] >= 0.5  # the easy rung barely needs attention
    accuracies = list(ladder_calibration.values())
    assert [a["random"] for a in accuracies] == sorted((a["random"] for a in accuracies), reverse=True)


def test_calibration_failures_name_what_breaks() -> None:
    good = {"oracle": 1.0, "all_cells": 0.4, "random": 0.1}
    flat = {"SyntheticGlimpse-Easy-v0": good, "SyntheticGlimpse-Medium-v0": {**good, "all_cells": 0.8}}
    failures = calibration_failures(flat)
    assert any("all cells 0.800 not 0.3 below oracle" in f for f in failures)
    assert any("all_cells 0.800 above the rung below" in f for f in failures)
    assert calibration_failures({"SyntheticGlimpse-Easy-v0": {**good, "oracle": 0.5}}) == [
        "SyntheticGlimpse-Easy-v0: oracle 0.500 < 0.9"]


def test_same_data_seed_same_features_and_other_seed_differs() -> None:
    clips, frames, cells = np.array([0, 5, 9]), np.array([0, 3, 7]), np.array([24, 0, 48])
    a = SyntheticSource(SyntheticConfig(data_seed=1)).glimpse(clips, frames, cells)
    b = SyntheticSource(SyntheticConfig(data_seed=1)).glimpse(clips, frames, cells)
    c = SyntheticSource(SyntheticConfig(data_seed=2)).glimpse(clips, frames, cells)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    train, test = SyntheticSource(SyntheticConfig(), "train"), SyntheticSource(SyntheticConfig(), "test")
    assert not np.array_equal(train.cube(clips, frames), test.cube(clips, frames))


def test_features_look_like_relu_activations() -> None:
    cube = SyntheticSource(SyntheticConfig()).cube(np.arange(8), np.zeros(8, dtype=int))
    assert cube.min() >= 0
    assert 0.3 < (cube == 0).mean() < 0.9  # sparse
    assert np.isfinite(cube).all()


def test_core_has_one_to_four_cells_and_drifts_slowly() -> None:
    cfg = SyntheticConfig()
    src = SyntheticSource(cfg)
    clips = np.repeat(np.arange(50), cfg.frames)
    frames = np.tile(np.arange(cfg.frames), 50)
    core = src.core_mask(clips, frames).reshape(50, cfg.frames, 49)
    sizes = core.sum(-1)
    assert sizes.min() >= 1 and sizes.max() <= 4
    moved = (core[:, 1:] != core[:, :-1]).any(-1).mean()
    assert 0.02 < moved < 0.6  # it moves, but not every frame


def test_memory_does_not_grow_with_the_number_of_clips() -> None:
    small = SyntheticSource(SyntheticConfig(train_clips_per_class=10))
    large = SyntheticSource(SyntheticConfig(train_clips_per_class=1_000_000))
    assert large.num_clips == 51_000_000
    assert large._table.nbytes == small._table.nbytes
    last = np.array([large.num_clips - 1])
    assert large.glimpse(last, np.array([29]), np.array([0])).shape == (1, 1024)


def test_cached_layouts_equal_freshly_hashed_ones_and_the_cache_stays_bounded() -> None:
    """The layout cache (a speed-up of the batched env) never changes a feature and never outgrows its bound."""
    cfg = SyntheticConfig(num_classes=5, feature_dim=32, frames=6, train_clips_per_class=20)
    source = SyntheticSource(cfg, periphery_dim=4)
    source._layout_capacity = 7
    rng = np.random.default_rng(0)
    for _ in range(20):
        clips = rng.integers(source.num_clips, size=int(rng.integers(1, 12)))
        frames = rng.integers(cfg.frames, size=len(clips))
        cells = rng.integers(49, size=len(clips))
        rows, core = source._rows_for(clips, frames)  # hashed, no cache
        np.testing.assert_array_equal(source.cube(clips, frames), source._table[rows].reshape(len(clips), 7, 7, -1))
        np.testing.assert_array_equal(source.core_mask(clips, frames), core)
        glimpse, on_core, periphery = source.glimpse_on_core_periphery(clips, frames, cells)
        np.testing.assert_array_equal(glimpse, source._table[rows[np.arange(len(clips)), cells]])
        np.testing.assert_array_equal(on_core, core[np.arange(len(clips)), cells])
        np.testing.assert_array_equal(periphery.reshape(len(clips), 49, -1), source._periphery_table[rows])
        assert len(source._layout_cache) <= 7


def test_exported_store_serves_the_same_episodes(tmp_path: Path) -> None:
    cfg = SyntheticConfig(num_classes=3, feature_dim=16, frames=5, train_clips_per_class=2, test_clips_per_class=1)
    path = export_synthetic_store(tmp_path / "syn", cfg)
    store = FeatureStore(path)
    assert store.features.shape == (9, 5, 7, 7, 16)
    for subset in ("train", "test"):
        generated, stored = SyntheticSource(cfg, subset), StoreSource(store, subset)
        assert stored.num_clips == generated.num_clips
        clips = np.repeat(np.arange(generated.num_clips), 5)
        frames = np.tile(np.arange(5), generated.num_clips)
        np.testing.assert_allclose(stored.cube(clips, frames), generated.cube(clips, frames), rtol=1e-3)
        np.testing.assert_array_equal(stored.core_mask(clips, frames), generated.core_mask(clips, frames))
        k = default_periphery_dim(cfg.feature_dim)
        with_periphery = SyntheticSource(cfg, subset, periphery_dim=k), StoreSource(store, subset, periphery_dim=k)
        np.testing.assert_allclose(with_periphery[1].periphery(clips, frames),
                                   with_periphery[0].periphery(clips, frames), rtol=2e-3, atol=1e-3)
    synthetic = gym.make("SyntheticGlimpse-v0", **{k: getattr(cfg, k) for k in
                                                   ("num_classes", "feature_dim", "frames", "train_clips_per_class",
                                                    "test_clips_per_class")})
    from_file = gym.make("StoreGlimpse-v0", data_root=str(path))
    a, b = synthetic.reset(seed=3), from_file.reset(seed=3)
    assert a[1]["video_id"] == b[1]["video_id"] and a[1]["on_core"] == b[1]["on_core"]
    # Glimpse mode (periphery on by default) through the env ids: the store serves the synthetic periphery.
    shape = {k: getattr(cfg, k) for k in ("num_classes", "feature_dim", "frames", "train_clips_per_class",
                                          "test_clips_per_class")}
    a = gym.make("SyntheticGlimpse-v0", observation_mode="glimpse", **shape).reset(seed=3)[0]
    b = gym.make("StoreGlimpse-v0", data_root=str(path), observation_mode="glimpse").reset(seed=3)[0]
    np.testing.assert_allclose(b["periphery"], a["periphery"], rtol=2e-3, atol=1e-3)
