"""Bad input gets an exception whose message says what is wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from store_fixtures import generic_store, random_features

from envs.sources import InvalidFeaturesError
from envs.store import IncompleteStoreError, StoreFormatError, StoreNotFoundError, StoreWriter


def test_missing_store_names_the_command_that_builds_one(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="python -m feature_extractors") as err:
        gym.make("HMDB51Glimpse-v0", data_root=str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value)
    with pytest.raises(ValueError, match="data_root is required"):
        gym.make("StoreGlimpse-v0")


def test_folder_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(StoreNotFoundError, match="index.jsonl"):
        gym.make("StoreGlimpse-v0", data_root=str(tmp_path))


def test_incomplete_store_says_to_resume(tmp_path: Path) -> None:
    from envs.store import ClipRecord

    records = [ClipRecord(f"v{i}", [0], "train") for i in range(3)]
    writer = StoreWriter.open(tmp_path / "s", class_names=["a"], records=records, frames=4, feature_dim=8)
    writer.write_clip(0, random_features(1)[0])
    with pytest.raises(IncompleteStoreError, match=r"1 of 3 clips.*again to resume"):
        gym.make("StoreGlimpse-v0", data_root=str(tmp_path / "s"))


def test_shape_that_disagrees_with_the_env_arguments(stores: dict) -> None:
    with pytest.raises(ValueError, match=r"feature_dim=8 but the env was asked for feature_dim=1024"):
        gym.make("StoreGlimpse-v0", data_root=str(stores["store"]), feature_dim=1024)
    with pytest.raises(ValueError, match=r"frames=4 .* frames=30"):
        gym.make("StoreGlimpse-v0", data_root=str(stores["store"]), frames=30)


def test_unknown_split_and_subset(stores: dict) -> None:
    with pytest.raises(ValueError, match=r"unknown split 4 .* splits 1, 2, 3"):
        gym.make("HMDB51Glimpse-v0", data_root=str(stores["hmdb51"]), split=4)
    with pytest.raises(ValueError, match=r"unknown subset 'val' .* train, test"):
        gym.make("HMDB51Glimpse-v0", data_root=str(stores["hmdb51"]), subset="val")
    with pytest.raises(ValueError, match=r"training, validation"):
        gym.make("ActivityNetGlimpse-v0", data_root=str(stores["activitynet"]), subset="testing")
    with pytest.raises(ValueError, match="HMDB51Glimpse-v0 only"):
        gym.make("StoreGlimpse-v0", data_root=str(stores["store"]), split=1)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        gym.make("SyntheticGlimpse-v0", subset="validation")


def test_class_index_out_of_range_in_the_index(tmp_path: Path) -> None:
    store = generic_store(tmp_path / "s")
    lines = (store / "index.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["labels"] = [7]
    lines[1] = json.dumps(row)
    (store / "index.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreFormatError, match=r"row 1 .* class index \[7\] is out of range .* 2 classes"):
        gym.make("StoreGlimpse-v0", data_root=str(store))


def test_nan_or_inf_in_a_glimpse(tmp_path: Path) -> None:
    """A clip is checked whole the first time it is read (not at every read), so even a glimpse of a finite cell
    of a corrupt clip is refused, naming the clip; clean clips read after it still work."""
    store = generic_store(tmp_path / "s")
    features = np.load(store / "features.npy", mmap_mode="r+")
    features[1, 1, 0, 0, 3] = np.nan  # clip 1, frame 1, cell 0
    features[2, 2, 3, 3, 0] = np.inf  # clip 2, frame 2, centre cell
    features.flush()
    # (the passive checker wraps reset and cannot follow a reset that raised: leave it out)
    env = gym.make("StoreGlimpse-v0", data_root=str(store), observation_mode="glimpse", disable_env_checker=True)
    for clip, frame in ((1, 1), (2, 2)):
        for _ in range(2):  # still refused the second time
            with pytest.raises(InvalidFeaturesError, match=rf"clip {clip} \(video 'my_{clip}', store row {clip}\), "
                                                           rf"first in frame {frame}.* re-extract"):
                env.reset(seed=0, options={"video_index": clip})
    env.reset(seed=0, options={"video_index": 0})
    env.step(np.array([24, 0]))


@pytest.mark.parametrize("action", [[49, 0], [-1, 0], [0, 5], [1.5, 0], [0], [1.0, float("inf")]])
def test_action_outside_the_space(action: list) -> None:
    env = gym.make("SyntheticGlimpse-v0", num_classes=5, feature_dim=8, frames=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array(action))


def test_stepping_after_the_end_without_reset() -> None:
    env = gym.make("SyntheticGlimpse-v0", num_classes=5, feature_dim=8, frames=2).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))
    env.reset(seed=0)
    env.step(np.array([0, 0]))
    env.step(np.array([0, 0]))
    with pytest.raises(RuntimeError, match="call env.reset"):
        env.step(np.array([0, 0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"observation_mode": "pixels"}, "observation_mode 'pixels'; choose one of cube, glimpse"),
        ({"reward_mode": "sparse"}, "reward_mode 'sparse'"),
        ({"glimpse_budget": 0}, "glimpse_budget must be None"),
        ({"glimpses_per_frame": 0}, "glimpses_per_frame must be an integer >= 1"),
        ({"eta": 1.5}, r"eta must lie in \[0, 1\]"),
        ({"noise": -1.0}, "invalid synthetic setting"),
        ({"glimpse_size": 2}, "unknown argument"),
        ({"observation_dtype": "int8"}, "observation_dtype"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        gym.make("SyntheticGlimpse-v0", **kwargs)


def test_synthetic_knobs_on_a_store_env(stores: dict) -> None:
    with pytest.raises(TypeError, match="noise: synthetic-data setting"):
        gym.make("StoreGlimpse-v0", data_root=str(stores["store"]), noise=2.0)


def test_bad_video_index() -> None:
    env = gym.make("SyntheticGlimpse-v0", num_classes=2, feature_dim=8, train_clips_per_class=2)
    with pytest.raises(ValueError, match=r"video_index.*\[0, 3\]"):
        env.reset(options={"video_index": 4})
