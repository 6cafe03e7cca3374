"""Crop cells (``--cells crop``) and the glances that are their store's periphery: pixel motion energy
(``--glance motion``) and the backbone on the downscaled frame (``--glance lowres``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import gymnasium
import numpy as np
import pytest
import torch
from store_fixtures import generic_store
from video_fixtures import make_video_list

from agents.algorithms.policy import Policy
from envs.periphery import LOWRES_GLANCE_TRANSFORM, MOTION_ENERGY_TRANSFORM, motion_energy
from envs.store import FeatureStore, StoreFormatError, StoreWriter, add_periphery
from feature_extractors import merge
from feature_extractors.backbone import Backbone, check_crop_size, check_glance_size, crop_starts, trunk_flops
from feature_extractors.cli import main
from feature_extractors.errors import ExtractionError
from feature_extractors.extract import glance_description, lowres_glance, lowres_glance_description


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone.build("random", 0, "cpu")


def random_frames(count: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 224, 224, 3), dtype=torch.uint8, generator=gen)


def pooled(backbone: Backbone, crop: torch.Tensor) -> np.ndarray:
    """The backbone's global-average-pooled inception5b output of one crop, run on its own."""
    with torch.inference_mode():
        return backbone.trunk(crop[None]).float().mean(dim=(2, 3))[0].numpy()


def test_crop_starts_are_centred_on_the_cells_and_inside_the_frame() -> None:
    assert crop_starts(32) == [0, 32, 64, 96, 128, 160, 192]  # one cell each
    assert crop_starts(64) == [0, 16, 48, 80, 112, 144, 160]  # centre (i + 0.5) * 32 - 32, clipped to [0, 160]
    assert crop_starts(224) == [0] * 7


def test_a_crop_cell_is_the_pooled_output_of_its_crop_alone(backbone: Backbone) -> None:
    frames = random_frames(2)
    cells = backbone.crop_cells(frames, 64).numpy()
    assert cells.shape == (2, 7, 7, 1024) and cells.dtype == np.float16
    starts = crop_starts(64)
    for f, i, j in [(0, 0, 0), (1, 3, 4), (0, 6, 6), (1, 6, 0)]:
        a, b = starts[i], starts[j]
        alone = pooled(backbone, frames[f, a : a + 64, b : b + 64])
        np.testing.assert_allclose(cells[f, i, j].astype(np.float32), alone, rtol=2e-3, atol=1e-3)
    assert not np.allclose(cells[0, 0, 0], cells[0, 3, 4])  # cells see different pixels


def test_one_crop_cell_alone_is_the_cell_of_all_crops(backbone: Backbone) -> None:
    frame = random_frames(1, seed=3)
    cells = backbone.crop_cells(frame, 64).numpy()[0]
    for cell in (0, 10, 24, 48):
        alone = backbone.crop_cell(frame[0], 64, cell).numpy()
        assert alone.shape == (1024,) and alone.dtype == np.float16
        np.testing.assert_allclose(alone.astype(np.float32), cells[divmod(cell, 7)].astype(np.float32),
                                   rtol=2e-3, atol=1e-3)


def test_pixels_outside_a_crop_leave_its_cell_unchanged(backbone: Backbone) -> None:
    frames = random_frames(1, seed=1)
    changed = frames.clone()
    changed[0, 96:, 96:] = 255 - changed[0, 96:, 96:]  # everything right of and below the top-left crops
    before, after = backbone.crop_cells(frames, 64).numpy(), backbone.crop_cells(changed, 64).numpy()
    # crops of rows/columns 0 and 1 end at pixel 80 < 96: untouched
    np.testing.assert_allclose(after[0, :2, :].astype(np.float32), before[0, :2, :].astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(after[0, :, :2].astype(np.float32), before[0, :, :2].astype(np.float32), atol=1e-3)
    assert np.abs(after[0, 5, 5].astype(np.float32) - before[0, 5, 5]).max() > 1e-2  # inside the change


def test_flops_of_the_trunk_at_crop_and_frame_size(backbone: Backbone) -> None:
    assert trunk_flops(backbone.trunk, 224) == pytest.approx(2.995e9, rel=1e-3)
    assert trunk_flops(backbone.trunk, 64) == pytest.approx(0.2445e9, rel=1e-3)


@pytest.mark.parametrize("size", [16, 31, 225, 448])
def test_a_crop_size_outside_the_range_is_a_one_line_error(size: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExtractionError, match=r"use 32\.\.224 px"):
        check_crop_size(size)
    args = ["videos", "--list", "nowhere.txt", "--out", "nowhere", "--cells", "crop", "--crop-size", str(size)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "32..224" in err and not Path("nowhere").exists()


def test_crop_size_needs_crop_cells(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["videos", "--list", "nowhere.txt", "--out", "nowhere", "--crop-size", "64"]) == 2
    assert "--cells crop" in capsys.readouterr().err


def test_motion_energy_is_zero_on_a_static_clip_and_lands_where_it_moves() -> None:
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8), 4, axis=0)
    assert motion_energy(still).shape == (4, 7, 7, 1) and not motion_energy(still).any()
    moving = still.copy()
    for t in range(4):  # a white 16 px square stepping right inside cell (2, 3), then into cell (2, 4)
        moving[t, 72:88, 100 + 8 * t : 116 + 8 * t] = 255
    energy = motion_energy(moving)[..., 0]
    assert not energy[0].any()  # no previous frame
    for t in range(1, 4):
        moved = set(zip(*np.nonzero(energy[t]), strict=True))
        assert moved and moved <= {(2, 3), (2, 4)}
        assert energy[t, 2, 3] > 0
    assert energy.max() <= 1.0


def test_a_store_with_a_glance_takes_it_with_each_clip(tmp_path: Path) -> None:
    from envs.store import ClipRecord

    records = [ClipRecord(video_id=f"v{i}", labels=[0], subset="train") for i in range(2)]
    writer = StoreWriter.open(tmp_path / "s", class_names=["a"], records=records, frames=3, grid=7,
                              feature_dim=8, glance=glance_description())
    features = np.ones((3, 7, 7, 8), dtype=np.float16)
    with pytest.raises(StoreFormatError, match="no periphery given"):
        writer.write_clip(0, features)
    glance = np.full((3, 7, 7, 1), 0.25, dtype=np.float32)
    writer.write_clip(0, features, periphery=glance)
    writer.write_clip(1, features, periphery=glance * 2)
    writer.finalize()
    store = FeatureStore(tmp_path / "s")
    assert store.meta["periphery"]["transform"] == MOTION_ENERGY_TRANSFORM and store.periphery_dim == 1
    values = store.open_periphery(1)
    assert values.shape == (2, 3, 7, 7, 1)
    assert values[0].max() == np.float16(0.25) and values[1].min() == np.float16(0.5)


def test_a_store_written_before_cells_were_recorded_resumes_as_full(tmp_path: Path) -> None:
    from envs.store import ClipRecord

    records = [ClipRecord(video_id="v", labels=[0], subset="train")]
    kwargs = {"class_names": ["a"], "records": records, "frames": 2, "grid": 7, "feature_dim": 8}
    StoreWriter.open(tmp_path / "s", settings={"weights": "w"}, **kwargs)
    full = {"cells": "full", "crop_size": None, "cnn_flops_per_cell": 1.0, "cnn_flops_per_frame": 49}
    assert StoreWriter.open(tmp_path / "s", settings={"weights": "w", **full}, **kwargs).pending_rows() == [0]
    with pytest.raises(StoreFormatError, match="cells"):
        StoreWriter.open(tmp_path / "s", settings={"weights": "w", **full, "cells": "crop"}, **kwargs)


def extract_tiny_crop_store(out: Path, *options: str) -> Path:
    """A crop-cell store of the tiny test videos (3 frames, random weights) at ``out``, with ``options``."""
    listing, classes = make_video_list(out.parent / "videos")
    args = ["videos", "--list", str(listing), "--classes", str(classes), "--out", str(out), "-T", "3",
            "--weights", "random", "--device", "cpu", "--batch-size", "4", "--workers", "0", "--no-progress",
            "--cells", "crop", *options]
    assert main(args) == 0
    return out


@pytest.mark.slow
def test_a_crop_cell_extraction_opens_in_glimpse_mode_with_the_pixel_glance(tmp_path: Path) -> None:
    import envs  # noqa: F401  (registers the ids)

    out = extract_tiny_crop_store(tmp_path / "crop", "--crop-size", "64")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["cells"] == "crop" and meta["crop_size"] == 64
    assert meta["cnn_flops_per_cell"] == pytest.approx(0.2445e9, rel=1e-3)
    assert meta["cnn_flops_per_frame"] == 49 * meta["cnn_flops_per_cell"]
    assert meta["periphery"]["transform"] == MOTION_ENERGY_TRANSFORM and meta["periphery"]["dim"] == 1
    assert meta["periphery"]["flops_per_frame"] == 8 * 224 * 224
    store = FeatureStore(out)
    assert store.features.shape == (3, 3, 7, 7, 1024)
    glance = store.open_periphery(1)
    assert not np.asarray(glance[:, 0]).any() and np.asarray(glance[:, 1:]).any()  # the numbered frames change
    env = gymnasium.make("StoreGlimpse-v0", data_root=str(out), subset="train", observation_mode="glimpse")
    obs, _ = env.reset(seed=0)
    assert obs["periphery"].shape == (7, 7, 1)
    env.close()
    check_the_cost_account_charges_the_glance_and_the_crops_looked_at(out, meta)


class StopAtSecondFrame(Policy):
    """Looks at cells 0, 1, 1 ... and stops after its second prediction."""

    def reset(self, n: int) -> None:
        self.t = 0

    def act(self, obs, deterministic=True, core_mask=None):
        n = len(obs["location"])
        self.t += 1
        actions = np.stack([np.full(n, min(self.t, 1)), np.zeros(n, int), np.full(n, int(self.t >= 2))], 1)
        return actions, np.full((n, 2), 0.5)


def check_the_cost_account_charges_the_glance_and_the_crops_looked_at(store: Path, meta: dict) -> None:
    from agents.evaluation.episodes import play_clips
    from agents.evaluation.metrics import cost_metrics
    from agents.training.envutil import make_vector_env

    env = make_vector_env("StoreGlimpse-v0", {"data_root": str(store), "subset": "train",
                                              "observation_mode": "glimpse", "early_exit": True}, 2)
    result = play_clips(env, StopAtSecondFrame(), np.arange(env.unwrapped.num_clips))
    clips = env.unwrapped.num_clips
    assert result.lengths.tolist() == [2] * clips and result.frames_watched.tolist() == [2] * clips
    cost = cost_metrics(result, env.unwrapped.source, env.unwrapped.rules, cube=False, periphery=True)
    glance, crop = meta["periphery"]["flops_per_frame"], meta["cnn_flops_per_cell"]
    assert cost["cnn_cells"] == "crop" and cost["frames_watched_per_clip"] == 2
    assert cost["cnn_flops_per_clip"] == pytest.approx(2 * glance + 2 * crop)  # cells 0 then 1, one per frame
    cube = cost_metrics(result, env.unwrapped.source, env.unwrapped.rules, cube=True, periphery=False)
    assert cube["cnn_flops_per_clip"] == pytest.approx(2 * 49 * crop)  # every crop of the 2 frames watched
    env.close()


@pytest.mark.slow
def test_crop_cell_shards_merge_into_the_single_run_store_and_add_periphery_keeps_the_glance(tmp_path: Path) -> None:
    listing, classes = make_video_list(tmp_path / "videos")
    args = ["videos", "--list", str(listing), "--classes", str(classes), "-T", "3", "--weights", "random",
            "--device", "cpu", "--batch-size", "4", "--workers", "0", "--no-progress", "--cells", "crop"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    for i in range(2):
        assert main([*args, "--out", str(tmp_path / f"part{i}"), "--shard", f"{i}/2"]) == 0
    merge([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged", progress=False)
    for name in ("features.npy", "periphery.npy", "motion.npy"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    glance = (tmp_path / "one" / "periphery.npy").read_bytes()
    add_periphery(tmp_path / "one")
    assert (tmp_path / "one" / "periphery.npy").read_bytes() == glance
    assert FeatureStore(tmp_path / "one").open_motion(1).shape == (3, 3, 7, 7, 1)
    with pytest.raises(StoreFormatError, match="pixel glance"):
        add_periphery(tmp_path / "one", dim=8)


def test_the_motion_periphery_of_a_crop_cell_store_is_refused_naming_the_cell_mode(tmp_path: Path) -> None:
    import envs  # noqa: F401  (registers the ids)

    store = generic_store(tmp_path / "store")
    meta = json.loads((store / "meta.json").read_text())
    (store / "meta.json").write_text(json.dumps({**meta, "cells": "crop"}))
    with pytest.raises(ValueError, match="crop cells \\(meta.json cells='crop'\\)") as caught:
        gymnasium.make("StoreGlimpse-v0", data_root=str(store), observation_mode="glimpse", periphery_motion=True)
    assert "\n" not in str(caught.value)


def test_the_lowres_glance_is_the_backbone_on_the_downscaled_frame_pooled_and_grouped(backbone: Backbone) -> None:
    frames = random_frames(2, seed=2)
    glance = lowres_glance(backbone, frames, 112)
    assert glance.shape == (2, 7, 7, 64) and glance.dtype == np.float32
    for f in range(2):
        small = cv2.resize(frames[f].numpy(), (112, 112), interpolation=cv2.INTER_AREA)  # exactly 2 x 2 means
        with torch.inference_mode():
            fmap = backbone.trunk(torch.from_numpy(small)[None]).float()[0].numpy()  # (1024, 4, 4)
        assert fmap.shape == (1024, 4, 4)
        for i, j in [(0, 0), (2, 5), (3, 3), (6, 1)]:
            # adaptive average pooling: grid cell i averages map rows floor(4i/7) .. ceil(4(i+1)/7) - 1
            rows = slice(4 * i // 7, -(-4 * (i + 1) // 7))
            cols = slice(4 * j // 7, -(-4 * (j + 1) // 7))
            cell = fmap[:, rows, cols].mean(axis=(1, 2))
            expected = cell.reshape(64, 16).mean(axis=1)  # 64 groups of 16 channels
            np.testing.assert_allclose(glance[f, i, j], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(glance[0, 0, 0], glance[0, 6, 6])


def test_the_lowres_glance_description_has_its_size_and_flops(backbone: Backbone) -> None:
    entry = lowres_glance_description(112, backbone.trunk)
    assert entry["transform"] == LOWRES_GLANCE_TRANSFORM and entry["dim"] == 64 and entry["size"] == 112
    assert entry["flops_per_frame"] == pytest.approx(0.766e9, rel=1e-3)  # a quarter of the 224 px frame
    assert "112 px" in entry["kind"]


@pytest.mark.parametrize("size", [16, 31, 225])
def test_a_glance_size_outside_the_range_is_a_one_line_error(size: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExtractionError, match=r"use 32\.\.224 px"):
        check_glance_size(size)
    args = ["videos", "--list", "nowhere.txt", "--out", "nowhere", "--cells", "crop", "--glance", "lowres",
            "--glance-size", str(size)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--glance-size" in err and "32..224" in err and not Path("nowhere").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--glance", "lowres"], "--glance lowres needs --cells crop"),
        (["--cells", "crop", "--glance-size", "112"], "--glance-size 112 needs --cells crop --glance lowres"),
    ],
)
def test_glance_options_need_crop_cells(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["videos", "--list", "nowhere.txt", "--out", "nowhere", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_a_store_resumes_only_with_the_glance_it_was_begun_with(tmp_path: Path, backbone: Backbone) -> None:
    from envs.store import ClipRecord

    records = [ClipRecord(video_id="v", labels=[0], subset="train")]
    kwargs = {"class_names": ["a"], "records": records, "frames": 2, "grid": 7, "feature_dim": 8}
    lowres = lowres_glance_description(112, backbone.trunk, dim=4)
    StoreWriter.open(tmp_path / "s", glance=lowres, **kwargs).close()
    StoreWriter.open(tmp_path / "s", glance=lowres, **kwargs).close()  # the same glance resumes
    for other in (glance_description(), {**lowres, "size": 96}, None):
        with pytest.raises(StoreFormatError, match="whose periphery is the glance lowres_backbone_group_mean/v1"):
            StoreWriter.open(tmp_path / "s", glance=other, **kwargs)


@pytest.mark.slow
def test_a_lowres_glance_extraction_opens_in_glimpse_mode_and_passes_the_env_checker(tmp_path: Path) -> None:
    from gymnasium.utils.env_checker import check_env

    import envs  # noqa: F401  (registers the ids)

    out = extract_tiny_crop_store(tmp_path / "lowres", "--glance", "lowres", "--glance-size", "96")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["periphery"]["transform"] == LOWRES_GLANCE_TRANSFORM and meta["periphery"]["size"] == 96
    assert meta["periphery"]["dim"] == 64 and meta["periphery"]["flops_per_frame"] == pytest.approx(0.550e9, rel=1e-3)
    assert meta["cnn_flops_per_frame"] == 49 * meta["cnn_flops_per_cell"]
    store = FeatureStore(out)
    glance = np.asarray(store.open_periphery(64), dtype=np.float32)
    assert glance.shape == (3, 3, 7, 7, 64) and glance.any()
    env = gymnasium.make("StoreGlimpse-v0", data_root=str(out), subset="train", observation_mode="glimpse")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0, options={"video_index": 0})
    assert obs["periphery"].shape == (7, 7, 64)
    row = [r.video_id for r in store.records].index(info["video_id"])
    np.testing.assert_array_equal(obs["periphery"], glance[row, 0])
    env.close()
