"""The rendered action-video benchmark: deterministic drawing, actor boxes -> core.npy through the real
extractor, both dataset layouts open as envs, bad annotations refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # registers the env ids; envs.ENV_IDS below
from envs.store import CORE_FILE, FeatureStore
from feature_extractors.datasets import ActorTrack
from feature_extractors.render import RenderSpec, Scene, SceneRenderer, render, write_video

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--classes", "2", "--clips-per-class", "3", "--frames", "3", "--no-progress"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "feature_extractors", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_drawing_is_deterministic_for_a_seed() -> None:
    renderer = SceneRenderer(RenderSpec.preset("moving"))
    a = renderer.draw(3, np.random.default_rng([0, 5]), 6)
    b = renderer.draw(3, np.random.default_rng([0, 5]), 6)
    c = renderer.draw(3, np.random.default_rng([1, 5]), 6)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.boxes == b.boxes
    assert not np.array_equal(a.frames, c.frames)


def test_rendered_files_are_the_same_for_the_same_seed(tmp_path: Path) -> None:
    spec = RenderSpec.preset("marked", num_classes=2, clips_per_class=2, frames=3)
    first, second = render(spec, tmp_path / "a", progress=False), render(spec, tmp_path / "b", progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".avi"]) == 4
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f


@pytest.mark.parametrize("variant", ["marked", "moving", "motion"])
def test_only_the_moving_variant_keeps_the_distractors_still(variant: str) -> None:
    spec = RenderSpec.preset(variant, clutter=0)
    renderer = SceneRenderer(spec)
    scene = renderer.draw(1, np.random.default_rng(0), 8)
    # pixels that change between frames, outside the actor's boxes
    changed = np.abs(np.diff(scene.frames.astype(int), axis=0)).sum(-1) > 0
    for t, box in enumerate(scene.boxes[:-1]):
        for b in (box, scene.boxes[t + 1]):
            changed[t, max(0, b[1] - 6) : b[3] + 6, max(0, b[0] - 6) : b[2] + 6] = False
    assert changed.any() == (variant != "moving")


def test_a_box_inside_one_cell_is_exactly_that_cell() -> None:
    cell = 32  # 224 / 7
    track = ActorTrack(224, 224, [[[3 * cell + 4, 2 * cell + 4, 4 * cell - 4, 3 * cell - 4]], [], [[0, 0, 224, 224]]])
    core = track.core([0, 1, 2, 0], grid=7)
    assert np.flatnonzero(core[0]).tolist() == [2 * 7 + 3] and core[3].tolist() == core[0].tolist()
    assert not core[1].any() and core[2].all()
    wide = ActorTrack(448, 112, [[[0, 0, 65, 17]]]).core([0], grid=7)  # a non-square video stretched to the grid
    assert np.flatnonzero(wide[0]).tolist() == [0, 1, 7, 8]


def _one_cell_videos(tmp_path: Path, boxes_per_video: list[list[list[int]]]) -> tuple[Path, Path]:
    """A video list of 224 x 224 clips with a bright square in the given box, and their actors.json."""
    lines, videos = [], {}
    for i, box in enumerate(boxes_per_video):
        frames = np.full((4, 224, 224, 3), 90, np.uint8)
        x0, y0, x1, y1 = box[0]
        frames[:, y0:y1, x0:x1] = (255, 40, 40)
        write_video(tmp_path / f"clip{i}.avi", frames, 10.0)
        lines.append(f"clip{i}.avi {'a' if i % 2 else 'b'} {'test' if i >= 2 else 'train'}")
        videos[f"clip{i}.avi"] = {"width": 224, "height": 224, "frames": 4, "boxes": [box] * 4}
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    actors = tmp_path / "actors.json"
    actors.write_text(json.dumps({"format": "actor-boxes/v1", "videos": videos}))
    return tmp_path / "list.txt", actors


@pytest.mark.slow
def test_extraction_turns_actor_boxes_into_the_core(tmp_path: Path) -> None:
    box = [[3 * 32 + 4, 2 * 32 + 4, 4 * 32 - 4, 3 * 32 - 4]]  # inside cell (2, 3)
    listing, actors = _one_cell_videos(tmp_path, [box, box, box, box])
    out = tmp_path / "store"
    done = _cli("videos", "--list", str(listing), "--actors", str(actors), "--frames", "3", "--weights", "random",
                "--workers", "0", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    core = np.load(out / CORE_FILE)
    assert core.shape == (4, 3, 49)
    assert (np.flatnonzero(core.reshape(-1, 49).any(axis=0)) == [17]).all() and core[..., 17].all()
    env = gym.make("StoreGlimpse-v0", data_root=str(out), subset="train")
    _, info = env.reset(seed=0, options={"video_index": 0})
    _, _, _, _, info = env.step(np.array([17, 0]))
    assert info["on_core"] is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.pop("clip1.avi"), "has no entry for clip 'clip1.avi'"),
        (lambda v: v["clip0.avi"].update(frames=5, boxes=[[]] * 5), "clip 'clip0.avi': 5 frames of boxes but"),
        (lambda v: v["clip2.avi"]["boxes"].__setitem__(1, [[200, 10, 240, 30]]), "clip 'clip2.avi', frame 1: box"),
    ],
    ids=["missing-clip", "wrong-frame-count", "box-outside-the-frame"],
)
def test_bad_actor_boxes_are_a_one_line_error_and_no_store(tmp_path: Path, change, message: str) -> None:
    box = [[10, 10, 40, 40]]
    listing, actors = _one_cell_videos(tmp_path, [box, box, box])
    data = json.loads(actors.read_text())
    change(data["videos"])
    actors.write_text(json.dumps(data))
    out = tmp_path / "store"
    done = _cli("videos", "--list", str(listing), "--actors", str(actors), "--frames", "2", "--weights", "random",
                "--workers", "0", "--no-progress", "--out", str(out))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and str(actors) in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["hmdb51", "activitynet"])
def test_both_layouts_render_extract_and_open_as_envs(tmp_path: Path, layout: str) -> None:
    videos = tmp_path / "rendered"
    extra = ["--video-frames", "12"] if layout == "activitynet" else []
    done = _cli("render", "--layout", layout, "--out", str(videos), *TINY, *extra)
    assert done.returncode == 0, done.stderr
    command = next(line.strip() for line in done.stderr.splitlines() if "python -m feature_extractors" in line)
    store = tmp_path / "store"
    args = command.split()[3:]  # after "python -m feature_extractors"
    args[args.index("--out") + 1] = str(store)
    done = _cli(*args, "--workers", "0", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert FeatureStore(store).meta["core"].startswith("cells overlapped by the actor boxes")
    env_id = {"hmdb51": "HMDB51Glimpse-v0", "activitynet": "ActivityNetGlimpse-v0"}[layout]
    env = gym.make(env_id, data_root=str(store), observation_mode="glimpse", periphery_motion=True)
    assert env.unwrapped.source.has_core
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert isinstance(info["on_core"], bool)
    if layout == "hmdb51":
        assert (store / CORE_FILE).exists() and np.load(store / CORE_FILE).any(axis=-1).all()  # actor always there
    else:
        labels = json.loads((videos / "annotations.json").read_text())["database"]
        assert all(entry["annotations"] for entry in labels.values())


@pytest.fixture(scope="module")
def tiny_marked_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered marked-actor dataset (3 colour classes, 12 clips each, 4 frames), extracted with random weights."""
    root = tmp_path_factory.mktemp("rendered")
    spec = RenderSpec.preset("marked", num_classes=3, clips_per_class=12, frames=4)
    render(spec, root / "videos", progress=False)
    done = _cli("hmdb51", "--videos", str(root / "videos" / "videos"), "--splits", str(root / "videos" / "splits"),
                "--actors", str(root / "videos" / "actors.json"), "--frames", "4", "--fps", "10", "--weights", "random",
                "--workers", "0", "--no-progress", "--out", str(root / "store"))
    assert done.returncode == 0, done.stderr
    return root / "store"


@pytest.mark.slow
def test_reinforce_learns_from_cnn_features_of_rendered_videos(tiny_marked_store: Path) -> None:
    """The paper's agent on real (random-weight) GoogLeNet features of rendered pixels, with the store envs'
    shipped hyperparameters except a small budget: well above chance, and it looks at the marked actor."""
    import torch
    from train_fixtures import FakeSession

    from agents.evaluation import evaluate_policy
    from agents.training.envutil import make_vector_env
    from agents.training.hyperparams import load_hyperparams
    from agents.training.registry import resolve_algorithm

    torch.set_num_threads(1)
    env_id, kwargs = "HMDB51Glimpse-v0", {"data_root": str(tiny_marked_store), "observation_mode": "glimpse"}
    spec = resolve_algorithm("reinforce")
    params = load_hyperparams(spec.hyperparams_file, env_id, envs.ENV_IDS)
    agent = spec.build(env_id, kwargs, params, n_envs=params["n_envs"], seed=0, device="cpu")
    agent.learn(30_000, FakeSession())
    test = make_vector_env(env_id, {**kwargs, "subset": "test"}, 12)
    result = evaluate_policy(agent.policy(), test)
    agent.close()
    test.close()
    core_share = float(np.load(tiny_marked_store / CORE_FILE).mean())  # focus of random glimpses
    assert result.accuracy >= 2 / 3  # chance: 1/3
    assert result.focus_accuracy >= 3 * core_share


def test_camera_motion_moves_everything_and_occluders_cover_the_scene() -> None:
    def draw(variant: str, **knobs: float) -> Scene:
        return SceneRenderer(RenderSpec.preset(variant, clutter=0, **knobs)).draw(2, np.random.default_rng(4), 6)

    def changed(scene: Scene) -> int:
        return int((np.abs(np.diff(scene.frames.astype(int), axis=0)).sum(-1) > 0).sum())

    still, panned = draw("moving"), draw("moving", camera_motion=4.0)
    assert changed(panned) > 2 * changed(still)  # the pan moves the still distractors on screen too
    assert all(0 <= b[0] < b[2] <= 224 and 0 <= b[1] < b[3] <= 224 for b in panned.boxes if b)
    covered = draw("marked", occlusion=2)
    bar = np.all(covered.frames == 128, axis=-1).all(axis=1)  # a full-height grey column in some frame
    assert bar.any()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_classes": 20}, r"--classes must lie in \[2, 16\]"),
        ({"variant": "motion", "num_classes": 11}, r"--classes must lie in \[2, 10\]"),
        ({"distractors": 12}, r"--distractors must lie in \[0, 9\]"),
        ({"frames": 1}, "--frames must be >= 2"),
        ({"layout": "activitynet", "untrimmed_frames": 4}, "--video-frames must be >= 6"),
    ],
)
def test_bad_render_options_say_the_allowed_range(overrides: dict, message: str) -> None:
    from feature_extractors.errors import ExtractionError

    variant = overrides.pop("variant", "marked")
    with pytest.raises(ExtractionError, match=message):
        RenderSpec.preset(variant, **overrides)


def test_rendering_into_an_existing_render_is_refused(tmp_path: Path) -> None:
    from feature_extractors.errors import ExtractionError

    spec = RenderSpec.preset("marked", num_classes=2, clips_per_class=2, frames=2)
    render(spec, tmp_path / "r", progress=False)
    with pytest.raises(ExtractionError, match="already holds a rendered dataset; choose another --out"):
        render(spec, tmp_path / "r", progress=False)
    with pytest.raises(ExtractionError, match="unknown variant 'still'; choose one of marked, moving, motion"):
        RenderSpec.preset("still")
