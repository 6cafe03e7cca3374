"""The glimpse environment contract (docs/environment.md) on every registered id."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from train_fixtures import TINY_ENV as TINY_SYNTHETIC

import envs
from envs import ENV_IDS
from envs.periphery import default_periphery_dim, motion, periphery

MODES = ("cube", "glimpse")
#: (observation_mode, periphery_dim, periphery_motion): the default of each mode, the blind glimpse mode,
#: cube + periphery, and the periphery with motion in both modes.
VIEWS = (
    ("cube", None, False), ("glimpse", None, False), ("glimpse", 0, False), ("cube", 1, False),
    ("glimpse", None, True), ("cube", None, True),
)  # fmt: skip


@pytest.mark.parametrize(("mode", "periphery_dim", "motion"), VIEWS)
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_env_checkers_pass(env_id: str, mode: str, periphery_dim: int | None, motion: bool, env_kwargs: dict) -> None:
    kw = dict(env_kwargs[env_id], observation_mode=mode, periphery_dim=periphery_dim, periphery_motion=motion)
    env = gym.make(env_id, render_mode="rgb_array", **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(gym.make(env_id, **kw), warn=True)
    # Any checker warning is a failure, except SB3's guess that a 3-d Box is an image: the (K, K, D)
    # cube and the (K, K, k) periphery are the contract, and our SB3 policies read them per cell.
    image_guess = ("is an image", "minimal resolution for an image")
    unexpected = [str(w.message) for w in caught if not any(g in str(w.message) for g in image_guess)]
    assert not unexpected
    assert (mode, periphery_dim) != ("glimpse", 0) or not caught


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_env_checkers_pass_with_early_exit(env_id: str, env_kwargs: dict) -> None:
    kw = dict(env_kwargs[env_id], observation_mode="glimpse", early_exit=True, frame_cost=0.1)
    env = gym.make(env_id, **kw)
    assert env.action_space.nvec.tolist()[2] == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        sb3_check_env(gym.make(env_id, **kw), warn=True)
    image_guess = ("is an image", "minimal resolution for an image")
    assert not [str(w.message) for w in caught if not any(g in str(w.message) for g in image_guess)]


def test_stop_ends_the_episode_commits_the_prediction_and_charges_frames_watched() -> None:
    kw = dict(TINY_SYNTHETIC, frames=6, observation_mode="glimpse", early_exit=True, frame_cost=0.25,
              reward_positive=1.0, reward_negative=-1.0, eta=0.5)
    env = gym.make("SyntheticGlimpse-v0", **kw)
    _, info = env.reset(seed=0, options={"video_index": 0})
    label = info["label"]
    _, reward, terminated, _, info = env.step(np.array([3, label, 0]))
    assert not terminated and reward == 0.0 and info["frame"] == 1
    _, reward, terminated, _, info = env.step(np.array([4, label, 1]))  # stop after 2 of 6 frames, right
    assert terminated and info["is_success"]
    assert info["frame"] == 1  # the final observation shows the last frame watched: nothing new computed
    assert info["n_true_pos"] == 6 and info["n_false_pos"] == 0  # the stop committed the prediction to all 6 steps
    assert reward == pytest.approx(0.5 * 6 - 0.25 * 2)  # eq. 7 over 6 steps minus 2 frames watched
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0, 0]))
    env.reset(seed=0, options={"video_index": 0})
    _, reward, terminated, _, info = env.step(np.array([0, (label + 1) % kw["num_classes"], 1]))  # stop, wrong
    assert terminated and not info["is_success"] and info["n_false_pos"] == 6
    assert reward == pytest.approx(-0.5 * 6 - 0.25 * 1)
    env.reset(seed=0, options={"video_index": 0})
    for _ in range(6):  # never stopping: the whole clip, all frames charged
        _, reward, terminated, _, info = env.step(np.array([0, label, 0]))
    assert terminated and reward == pytest.approx(0.5 * 6 - 0.25 * 6) and info["frame"] == 5


@pytest.mark.parametrize("reward_mode", ["paper", "final", "dense"])
def test_stop_returns_equal_the_returns_of_episodes_that_stop_there(reward_mode: str) -> None:
    """What a learner computes for every stopping time from one whole episode is what the env pays an agent
    that stops at that step (the same predictions before it)."""
    kw = dict(TINY_SYNTHETIC, frames=5, observation_mode="glimpse", early_exit=True, frame_cost=0.3,
              reward_mode=reward_mode, eta=0.4, reward_negative=-2.0)
    env = gym.make("SyntheticGlimpse-v0", **kw)
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0, options={"video_index": 1})
    label, classes = info["label"], kw["num_classes"]
    predictions = [label if rng.random() < 0.5 else (label + 1) % classes for _ in range(5)]
    rewards, true_pos, false_pos = [], [], []
    for p in predictions:  # the whole episode, never stopping
        _, reward, _, _, info = env.step(np.array([0, p, 0]))
        rewards.append(reward), true_pos.append(info["n_true_pos"]), false_pos.append(info["n_false_pos"])
    column = lambda xs: np.array(xs)[:, None]  # noqa: E731 (L, 1): one episode
    stop_returns = env.unwrapped.rules.stop_returns(column(rewards), column(true_pos), column(false_pos))[:, 0]
    for t in range(5):
        env.reset(seed=0, options={"video_index": 1})
        paid = sum(env.step(np.array([0, p, int(s == t)]))[1] for s, p in enumerate(predictions[:t + 1]))
        assert stop_returns[t] == pytest.approx(paid)
    assert stop_returns[-1] == pytest.approx(sum(rewards))
    with pytest.raises(ValueError, match="whole episodes of 5 steps"):
        env.unwrapped.rules.stop_returns(column(rewards[:3]), column(true_pos[:3]), column(false_pos[:3]))


def test_early_exit_rejects_bad_actions_and_options() -> None:
    env = gym.make("SyntheticGlimpse-v0", **TINY_SYNTHETIC, early_exit=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[cell, class, stop\]"):
        env.step(np.array([0, 0]))
    with pytest.raises(ValueError, match="stop in"):
        env.step(np.array([0, 0, 2]))
    with pytest.raises(ValueError, match="frame_cost"):
        gym.make("SyntheticGlimpse-v0", **TINY_SYNTHETIC, frame_cost=-1.0)
    plain = gym.make("SyntheticGlimpse-v0", **TINY_SYNTHETIC)
    plain.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[cell, class\]"):
        plain.step(np.array([0, 0, 1]))


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_spaces_follow_the_contract(env_id: str, env_kwargs: dict) -> None:
    env = gym.make(env_id, **env_kwargs[env_id]).unwrapped
    src = env.source
    assert env.action_space.nvec.tolist() == [49, src.num_classes]
    assert set(env.observation_space.spaces) == {"glimpse", "location", "progress", "cube"}
    assert env.observation_space["cube"].shape == (7, 7, src.feature_dim)
    assert env.observation_space["glimpse"].dtype == np.float32
    glimpse_only = gym.make(env_id, observation_mode="glimpse", observation_dtype="float16", **env_kwargs[env_id])
    assert set(glimpse_only.observation_space.spaces) == {"glimpse", "location", "progress", "periphery"}
    k = default_periphery_dim(src.feature_dim)
    assert glimpse_only.observation_space["periphery"].shape == (7, 7, k)
    obs, _ = glimpse_only.reset(seed=0)
    assert obs["glimpse"].dtype == np.float16 and obs["periphery"].dtype == np.float16
    blind = gym.make(env_id, observation_mode="glimpse", periphery_dim=0, **env_kwargs[env_id])
    assert set(blind.observation_space.spaces) == {"glimpse", "location", "progress"}


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_periphery_is_the_group_means_of_every_cell(env_id: str, env_kwargs: dict) -> None:
    """One definition: the periphery is envs.periphery of the frame's cells, in the single and vector env."""
    kw = dict(env_kwargs[env_id], observation_mode="cube", periphery_dim=1 if env_id != "SyntheticGlimpse-v0" else 3)
    env = gym.make(env_id, **kw)
    obs, _ = env.reset(seed=0)
    for step in range(3):
        expected = periphery(obs["cube"], kw["periphery_dim"])
        np.testing.assert_allclose(obs["periphery"], expected, rtol=2e-3, atol=1e-3)
        obs, *_ = env.step(np.array([step * 7, 0]))
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kw)
    vobs, _ = vec.reset(seed=0)
    np.testing.assert_array_equal(vobs["periphery"][0], env.reset(seed=0)[0]["periphery"])


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_periphery_motion_is_the_group_means_of_each_cells_change(env_id: str, env_kwargs: dict) -> None:
    """One definition (envs.periphery.motion) for the synthetic source and for stores' motion.npy, in glimpse and
    cube mode, in the single and the vector env."""
    k = 1 if env_id != "SyntheticGlimpse-v0" else 3
    kw = dict(env_kwargs[env_id], periphery_dim=k, periphery_motion=True, glimpses_per_frame=2)
    cube_env = gym.make(env_id, observation_mode="cube", **kw)
    glimpse_env = gym.make(env_id, observation_mode="glimpse", **kw)
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", observation_mode="glimpse", **kw)
    obs, _ = cube_env.reset(seed=3)
    seen, _ = glimpse_env.reset(seed=3)
    batched, _ = vec.reset(seed=3)
    assert obs["periphery"].shape == (7, 7, 2 * k)
    assert not obs["periphery"][..., k:].any()  # the first frame has no previous frame: no motion
    frames = {0: obs["cube"]}
    for step in range(6):
        action = np.array([step, 0])
        obs, _, _, _, info = cube_env.step(action)
        seen, *_ = glimpse_env.step(action)
        batched, *_ = vec.step(np.stack([action, action]))
        frames[info["frame"]] = obs["cube"]
        expected = motion(obs["cube"], frames[max(info["frame"] - 1, 0)], k)
        np.testing.assert_allclose(obs["periphery"][..., k:], expected, rtol=2e-3, atol=1e-3)
        np.testing.assert_array_equal(seen["periphery"], obs["periphery"])
        np.testing.assert_array_equal(batched["periphery"][0], seen["periphery"])
    assert obs["periphery"][..., k:].any()


def test_periphery_motion_needs_a_periphery() -> None:
    with pytest.raises(ValueError, match="periphery_motion=True needs a periphery"):
        gym.make("SyntheticGlimpse-v0", observation_mode="glimpse", periphery_dim=0, periphery_motion=True)


def test_periphery_dim_is_checked(env_kwargs: dict) -> None:
    for bad in (-1, 17, 2.5, "8"):
        with pytest.raises(ValueError, match=r"periphery_dim must be None \(the default size\), 0"):
            gym.make("SyntheticGlimpse-v0", observation_mode="glimpse", periphery_dim=bad, **TINY_SYNTHETIC)


def test_glimpse_is_the_cell_of_the_cube(env_kwargs: dict) -> None:
    env = gym.make("SyntheticGlimpse-v0", **env_kwargs["SyntheticGlimpse-v0"])
    obs, info = env.reset(seed=0)
    assert info["location"] == 24 and obs["location"] == 24  # centre cell first
    np.testing.assert_array_equal(obs["glimpse"], obs["cube"][3, 3])
    obs, *_ = env.step(np.array([10, 0]))
    np.testing.assert_array_equal(obs["glimpse"], obs["cube"][1, 3])
    assert obs["location"] == 10
    np.testing.assert_allclose(obs["progress"], [1 / TINY_SYNTHETIC["frames"], 0.0])


def test_glimpses_per_frame_advance_frames_every_m_steps() -> None:
    env = gym.make("SyntheticGlimpse-v0", glimpses_per_frame=3, **TINY_SYNTHETIC)
    _, info = env.reset(seed=0)
    frames, progress = [info["frame"]], []
    for _ in range(3 * TINY_SYNTHETIC["frames"]):
        obs, _, terminated, _, info = env.step(env.action_space.sample())
        frames.append(info["frame"])
        progress.append(obs["progress"].tolist())
    assert terminated
    assert frames[:7] == [0, 0, 0, 1, 1, 1, 2]
    assert progress[0] == pytest.approx([0.0, 1 / 3])


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_same_seed_same_actions_same_episode(env_id: str, env_kwargs: dict) -> None:
    def run() -> list:
        env = gym.make(env_id, initial_location="random", **env_kwargs[env_id])
        env.action_space.seed(5)
        out = [env.reset(seed=11)]
        for _ in range(25):
            step = env.step(env.action_space.sample())
            out.append(step)
            if step[2]:
                out.append(env.reset())
        return out

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        assert _equal(a, b)


def test_reset_selects_video_index(env_kwargs: dict) -> None:
    env = gym.make("StoreGlimpse-v0", subset="test", **env_kwargs["StoreGlimpse-v0"])
    ids = [env.reset(options={"video_index": i})[1]["video_id"] for i in range(env.unwrapped.num_clips)]
    assert ids == ["my_4", "my_5"]


def test_subsets_and_splits_select_clips(stores: dict) -> None:
    def ids(env_id: str, **kw) -> set[str]:
        env = gym.make(env_id, **kw).unwrapped
        return {str(v) for v in env.source.video_ids(np.arange(env.num_clips))}

    root = str(stores["hmdb51"])
    for split in (1, 2, 3):
        train, test = ids("HMDB51Glimpse-v0", data_root=root, split=split), ids(
            "HMDB51Glimpse-v0", data_root=root, split=split, subset="test")
        assert train.isdisjoint(test) and len(test) == 3
    assert len(ids("HMDB51Glimpse-v0", data_root=root, split=3)) == 6  # one clip per class unused
    an = str(stores["activitynet"])
    assert ids("ActivityNetGlimpse-v0", data_root=an, subset="validation") == {"v_d", "v_e"}
    assert ids("ActivityNetGlimpse-v0", data_root=an, subset="test") == {"v_d", "v_e"}  # alias
    assert ids("ActivityNetGlimpse-v0", data_root=an) == {"v_a", "v_b", "v_c"}


def test_default_data_root_comes_from_glimpse_data(stores: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_DATA", str(stores["hmdb51"].parent))
    with pytest.raises(FileNotFoundError, match="data/hmdb51"):
        gym.make("HMDB51Glimpse-v0")  # the fixture folder is called 'hmdb51', not 'data/hmdb51'
    (stores["hmdb51"].parent / "data").mkdir(exist_ok=True)
    link = stores["hmdb51"].parent / "data" / "hmdb51"
    if not link.exists():
        link.symlink_to(stores["hmdb51"])
    assert gym.make("HMDB51Glimpse-v0").unwrapped.num_clips == 9  # split 1 by default: 12 clips, 3 test


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_render_returns_a_stable_rgb_image(env_id: str, env_kwargs: dict) -> None:
    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs[env_id])
    env.reset(seed=0)
    shapes = set()
    for _ in range(3):
        image = env.render()
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.std() > 0  # not blank
        shapes.add(image.shape)
        env.step(env.action_space.sample())
    assert shapes == {(264, 224, 3)}


def test_render_draws_the_real_video_frame_when_readable(tmp_path, stores: dict) -> None:
    import cv2
    from store_fixtures import random_features

    from envs.store import ClipRecord, write_store

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(10):
        writer.write(np.full((48, 64, 3), (0, 0, 25 * k), np.uint8))  # BGR: red grows with time
    writer.release()
    record = ClipRecord("clip", [0], "train", source=str(video), timestamps=[0.0, 0.3, 0.6, 0.9], valid_frames=4)
    store = write_store(tmp_path / "s", random_features(1), [record], ["a"])
    env = gym.make("StoreGlimpse-v0", data_root=str(store), render_mode="rgb_array")
    env.reset(seed=0)
    early = env.render()
    for _ in range(3):
        env.step(np.array([0, 0]))
    late = env.render()
    # Bottom-right corner: away from the glimpse box and the header text. Red (RGB channel 0) grows.
    assert late[-5, -5, 0] > early[-5, -5, 0] + 100


def test_importing_envs_does_not_import_torch() -> None:
    code = "import sys, envs, gymnasium; gymnasium.make('SyntheticGlimpse-v0'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_demo_command_runs_random_episodes() -> None:
    out = subprocess.run([sys.executable, "-m", "envs", "--episodes", "2", "--num-classes", "5", "--feature-dim", "16"],
                         capture_output=True, text=True, check=True)
    assert "episode 1" in out.stdout and "accuracy" in out.stdout


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_observations_are_copies(env_id: str, env_kwargs: dict) -> None:
    env = gym.make(env_id, **env_kwargs[env_id])
    obs, _ = env.reset(seed=0, options={"video_index": 0})
    before = obs["glimpse"].copy()
    obs["glimpse"][:] = -1.0  # a user scribbling on an observation must not change the data
    obs["cube"][:] = -1.0
    again, _ = env.reset(seed=0, options={"video_index": 0})
    np.testing.assert_array_equal(again["glimpse"], before)
    assert again["cube"].min() >= 0


# ------------------------------------------------------------------------------------------------ ladder
@pytest.mark.parametrize("rung", list(envs.LADDER))
def test_ladder_rungs_are_registered_with_their_knobs(rung: str) -> None:
    source = gym.make(rung).unwrapped.source
    assert source.config == envs.ladder.rung_config(rung)
    assert gym.make(rung, num_classes=3).unwrapped.source.num_classes == 3  # gym.make kwargs still override


def test_ladder_rungs_get_harder_up_the_table() -> None:
    configs = [envs.ladder.rung_config(r) for r in envs.LADDER]
    for knob in ("num_classes", "feature_dim", "frames", "num_distractors", "noise"):
        values = [getattr(c, knob) for c in configs]
        assert values == sorted(values) and values[0] < values[-1], knob
    assert [c.saliency for c in configs] == sorted((c.saliency for c in configs), reverse=True)
    table = envs.ladder_table()
    assert all(f"`{r}`" in table for r in envs.LADDER) and "25.0%" in table
    assert table.replace("\n", "\n    ") in envs.GlimpseEnv.__doc__  # the env manual shows the same table


def test_an_unknown_rung_is_an_error_listing_the_rungs() -> None:
    with pytest.raises(ValueError, match="unknown ladder rung 'SyntheticGlimpse-Expert-v0'; the rungs are "
                                         "SyntheticGlimpse-Easy-v0, SyntheticGlimpse-Medium-v0"):
        envs.ladder.rung_config("SyntheticGlimpse-Expert-v0")


# ------------------------------------------------------------------------------------------ class subsets
def test_a_class_subset_of_a_store_is_relabelled_in_store_order(stores: dict) -> None:
    root = str(stores["hmdb51"])
    full = gym.make("HMDB51Glimpse-v0", data_root=root).unwrapped
    sub = gym.make("HMDB51Glimpse-v0", data_root=root, classes=["action_2", "action_0"]).unwrapped
    assert sub.class_names == ["action_0", "action_2"] and sub.action_space.nvec.tolist() == [49, 2]
    full_labels = full.source.labels(np.arange(full.num_clips))
    kept = np.isin(full_labels, [0, 2])
    assert sub.num_clips == kept.sum()
    np.testing.assert_array_equal(sub.source.labels(np.arange(sub.num_clips)), full_labels[kept] // 2)
    np.testing.assert_array_equal(sub.source.cube(np.array([0]), np.array([1])),
                                  full.source.cube(np.flatnonzero(kept)[:1], np.array([1])))
    first = gym.make("HMDB51Glimpse-v0", data_root=root, max_classes=2).unwrapped
    assert first.class_names == ["action_0", "action_1"]
    _, info = sub.reset(seed=0, options={"video_index": sub.num_clips - 1})
    assert info["label"] == 1


def test_a_class_subset_drops_other_labels_of_multi_label_videos(stores: dict) -> None:
    env = gym.make("ActivityNetGlimpse-v0", data_root=str(stores["activitynet"]), classes="cook,dance").unwrapped
    assert env.class_names == ["cook", "dance"]
    assert env.source.video_ids(np.arange(env.num_clips)).tolist() == ["v_a", "v_b"]  # v_c is swim only
    assert env.source.label_set(1) == frozenset({1})  # v_b: dance (swim is not in the subset)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": []}, "classes=\\[\\] is empty: name at least one class of the store at '.*' "
                          "\\(it has action_0, action_1, action_2\\)"),
        ({"classes": ["action_1", "kick"]}, "unknown class\\(es\\) 'kick' for the store at '.*'; it has action_0, "
                                            "action_1, action_2"),
        ({"max_classes": 5}, "max_classes=5 but the store at '.*' has 3 classes: pass max_classes=1..3 "
                             "\\(classes: action_0, action_1, action_2\\)"),
        ({"max_classes": 0}, "max_classes=0 but"),
        ({"classes": ["action_1"], "max_classes": 1}, "give classes=\\[...\\] or max_classes=N, not both"),
    ],
)
def test_a_bad_class_subset_is_a_one_line_error(stores: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        gym.make("HMDB51Glimpse-v0", data_root=str(stores["hmdb51"]), **kwargs)
    assert "\n" not in str(caught.value)


def test_the_synthetic_benchmark_refuses_a_class_subset() -> None:
    with pytest.raises(ValueError, match="the synthetic benchmark takes num_classes=N instead"):
        gym.make("SyntheticGlimpse-Easy-v0", max_classes=2)
