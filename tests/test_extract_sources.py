"""Feature extraction inputs, without running the network: clip lists, frame sampling, weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import googlenet
from video_fixtures import (
    HMDB_CLIPS,
    make_all_datasets,
    read_frame_number,
    write_video,
)

from feature_extractors import datasets, decode
from feature_extractors.backbone import (
    IMAGENET_FILE,
    Backbone,
    GoogLeNetTrunk,
    imagenet_weights_path,
    load_googlenet,
    resolve_device,
)
from feature_extractors.decode import DecodeError, Sampling, decode_clip, spread_indices, stream_clip
from feature_extractors.errors import ExtractionError
from feature_extractors.extract import Shard


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_all_datasets(tmp_path_factory.mktemp("sources"))


# ------------------------------------------------------------------------------------ sampling


DECODABLE = [(cls, name, n, fps) for cls, clips in HMDB_CLIPS.items() for name, n, fps in clips if n]


@pytest.mark.parametrize(("cls", "name", "n", "src_fps"), DECODABLE)
@pytest.mark.parametrize("fps", [10.0, 24.0])
def test_fixed_rate_takes_the_frames_it_reports(
    data: dict[str, Path], cls: str, name: str, n: int, src_fps: float, fps: float
) -> None:
    frames = 6
    clip = decode_clip(data["videos"] / cls / name, Sampling(frames=frames, fps=fps))
    assert clip.frames.shape == (frames, 224, 224, 3) and clip.frames.dtype == np.uint8
    shown = [read_frame_number(f) for f in clip.frames]
    assert shown == clip.frame_numbers  # the pixels are the frames it says it took
    for k in range(frames):
        assert clip.timestamps[k] == pytest.approx(clip.frame_numbers[k] / src_fps, abs=1e-6)
    for k in range(clip.valid_frames):  # each real frame is the one nearest to k / fps
        assert abs(clip.timestamps[k] - k / fps) <= 0.5 / src_fps + 1e-6
    expected_valid = sum(1 for k in range(frames) if k / fps <= (n - 1) / src_fps + 0.5 / src_fps + 1e-9)
    assert clip.valid_frames == expected_valid


def test_short_clip_is_padded_with_its_last_frame(data: dict[str, Path]) -> None:
    clip = decode_clip(data["videos"] / "shoot_ball" / "shoot_ball_short.avi", Sampling(frames=5, fps=10.0))
    assert clip.valid_frames == 2  # 5 frames at 30 fps: t = 0 and 0.1 s
    assert clip.frame_numbers == [0, 3, 3, 3, 3]
    assert clip.timestamps[2:] == [clip.timestamps[1]] * 3
    for padded in clip.frames[2:]:
        np.testing.assert_array_equal(padded, clip.frames[1])


@pytest.mark.parametrize(("n", "frames"), [(40, 4), (12, 5), (5, 8)])
def test_spread_covers_the_whole_video(data: dict[str, Path], n: int, frames: int) -> None:
    path = write_video(data["root"] / "spread" / f"v{n}.avi", n, 25.0)
    clip = decode_clip(path, Sampling(frames=frames, fps=None))
    assert clip.frame_numbers[: clip.valid_frames] == spread_indices(n, frames)
    assert [read_frame_number(f) for f in clip.frames] == clip.frame_numbers
    assert clip.valid_frames == min(n, frames)
    if n >= frames:
        assert clip.frame_numbers[0] < n / frames and clip.frame_numbers[-1] >= n - n / frames


@pytest.mark.parametrize("header", [0, 7, 33, 1000])
def test_spread_does_not_trust_the_header_frame_count(
    data: dict[str, Path], monkeypatch: pytest.MonkeyPatch, header: int
) -> None:
    path = data["videos"] / "brush_hair" / "brush_hair_a.avi"  # 40 frames
    monkeypatch.setattr(decode, "header_frame_count", lambda _: header)
    clip = decode_clip(path, Sampling(frames=4, fps=None))
    assert clip.frame_numbers == spread_indices(40, 4) == [5, 15, 25, 35]
    assert [read_frame_number(f) for f in clip.frames] == clip.frame_numbers


@pytest.mark.parametrize("fps", [10.0, None], ids=["fixed-rate", "spread"])
@pytest.mark.parametrize("name", ["brush_hair/brush_hair_a.avi", "shoot_ball/shoot_ball_short.avi"])
def test_a_streamed_clip_is_the_decoded_clip(data: dict[str, Path], name: str, fps: float | None) -> None:
    sampling = Sampling(frames=5, fps=fps)
    streamed = list(stream_clip(data["videos"] / name, sampling))
    np.testing.assert_array_equal(np.stack(streamed), decode_clip(data["videos"] / name, sampling).frames)


def test_a_stream_of_an_undecodable_video_raises_with_a_reason(data: dict[str, Path]) -> None:
    with pytest.raises(DecodeError, match="empty"):
        next(stream_clip(data["videos"] / "wave" / "wave_empty.avi", Sampling(frames=4)))


@pytest.mark.parametrize(
    ("name", "reason"),
    [("wave_corrupt.avi", "cannot open"), ("wave_empty.avi", "empty"), ("nope.avi", "not found")],
)
def test_undecodable_videos_raise_with_a_reason(data: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_clip(data["videos"] / "wave" / name, Sampling(frames=4))


def test_sampling_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="frames"):
        Sampling(frames=0)
    with pytest.raises(ValueError, match="fps"):
        Sampling(fps=0.0)


# ---------------------------------------------------------------------------------- clip lists


def test_hmdb51_labels_and_splits(data: dict[str, Path]) -> None:
    clips = datasets.hmdb51(data["videos"], data["splits"])
    assert clips.class_names == ["brush_hair", "shoot_ball", "wave"]
    assert clips.splits == ["1", "2", "3"] and clips.subsets == ["train", "test"]
    by_id = {r.video_id: r for r in clips.records}
    assert len(by_id) == 7  # every clip on disk, the undecodable ones too
    assert by_id["shoot_ball/shoot_ball_c.avi"].labels == [1]  # class name with an underscore
    assert by_id["shoot_ball/shoot_ball_c.avi"].subset == {"1": "train", "2": "train", "3": "test"}
    assert by_id["brush_hair/brush_hair_a.avi"].subset == {"1": "train", "2": "test", "3": "unused"}
    assert by_id["wave/wave_empty.avi"].subset == {"1": "unused", "2": "train", "3": "test"}
    assert Path(by_id["wave/wave_e.avi"].source).is_file()
    report = "\n".join(clips.report)
    assert "brush_hair_ghost.avi" in report  # listed but not on disk
    assert "HMDB-51 has 51" in report
    assert "brush_hair_test_split1.txt: 2 train / 1 test" in report


def test_hmdb51_split_file_checks(tmp_path: Path) -> None:
    good = tmp_path / "run_test_split1.txt"
    good.write_text("".join(f"c{i}.avi {1 if i < 70 else 2} \n" for i in range(100)) + "x.avi 0\n")
    tags, problems = datasets.read_hmdb51_split_file(good)
    assert problems == [] and len(tags) == 101
    bad = tmp_path / "run_test_split2.txt"
    bad.write_text("a.avi 1\nb.avi 7\nno_tag_here\na.avi 2\n")
    _, problems = datasets.read_hmdb51_split_file(bad)
    text = "\n".join(problems)
    assert "line 2" in text and "line 3" in text and "listed twice" in text and "70 / 30" in text


def test_hmdb51_missing_split_file_is_reported(data: dict[str, Path], tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    splits.mkdir()
    for f in data["splits"].iterdir():
        if f.name != "wave_test_split2.txt":
            (splits / f.name).write_text(f.read_text())
    clips = datasets.hmdb51(data["videos"], splits)
    assert all(r.subset["2"] == "unused" for r in clips.records if r.labels == [2])
    assert any("wave_test_split2.txt" in line for line in clips.report)


def test_hmdb51_errors(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="does not exist"):
        datasets.hmdb51(tmp_path / "nowhere", data["splits"])
    with pytest.raises(ExtractionError, match="No class folders"):
        datasets.hmdb51(tmp_path, data["splits"])
    with pytest.raises(ExtractionError, match="testTrainMulti_7030_splits"):
        datasets.hmdb51(data["videos"], tmp_path)


def test_activitynet_clip_list(data: dict[str, Path]) -> None:
    clips = datasets.activitynet(data["anet_videos"], data["annotations"])
    assert clips.class_names == ["Archery", "Bowling", "Surfing"]
    assert clips.subsets == ["training", "validation"]
    by_id = {r.video_id: r for r in clips.records}
    assert sorted(by_id) == ["vidA", "vidB", "vidMissing"]  # vidTest (testing, unlabelled) left out
    assert by_id["vidA"].subset == "training" and by_id["vidA"].labels == [2]
    assert by_id["vidA"].source.endswith("v_vidA.avi")
    assert by_id["vidB"].subset == "validation" and by_id["vidB"].labels == [0, 2]
    assert by_id["vidB"].segments == [[0.0, 1.0, 0], [1.5, 2.5, 2], [2.6, 3.0, 0]]
    assert by_id["vidMissing"].source is None and "missing on disk" in clips.missing["vidMissing"]
    assert any("vidMissing" in line for line in clips.report)
    training = datasets.activitynet(data["anet_videos"], data["annotations"], ["training"])
    assert [r.video_id for r in training.records] == ["vidA", "vidMissing"]
    with_testing = datasets.activitynet(data["anet_videos"], data["annotations"], ["training", "testing"])
    assert any("vidTest" in line and "no annotations" in line for line in with_testing.report)
    assert training.class_names == clips.class_names  # indices do not depend on the subsets chosen


def test_activitynet_errors(data: dict[str, Path], tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(ExtractionError, match="not valid JSON"):
        datasets.activitynet(data["anet_videos"], bad_json)
    no_db = tmp_path / "nodb.json"
    no_db.write_text(json.dumps({"version": "1.3"}))
    with pytest.raises(ExtractionError, match="no 'database'"):
        datasets.activitynet(data["anet_videos"], no_db)
    with pytest.raises(ExtractionError, match="Unknown ActivityNet subset"):
        datasets.activitynet(data["anet_videos"], data["annotations"], ["train"])
    with pytest.raises(ExtractionError, match="No labelled videos"):
        datasets.activitynet(data["anet_videos"], data["annotations"], ["testing"])
    with pytest.raises(ExtractionError, match="annotation file"):
        datasets.activitynet(data["anet_videos"], tmp_path / "missing.json")


def test_video_list(data: dict[str, Path], tmp_path: Path) -> None:
    clips = datasets.video_list(data["list"], data["classes"])
    assert clips.class_names == ["run", "jump"]  # the classes file's order
    assert [(r.video_id, r.labels, r.subset) for r in clips.records] == [
        ("my clips/jump 1.avi", [1], "train"),
        ("my clips/run.avi", [0], "test"),
        ("my clips/both.avi", [0, 1], "train"),  # no third column: train
    ]
    assert all(Path(r.source).is_file() for r in clips.records)
    derived = datasets.video_list(data["list"])  # no classes file: sorted labels
    assert derived.class_names == ["jump", "run"]
    missing = tmp_path / "list.txt"
    missing.write_text(f"{data['root'] / 'my clips' / 'run.avi'} 1\ngone.avi run test\n")
    clips = datasets.video_list(missing, data["classes"])
    assert clips.records[0].labels == [1]  # an index into the classes file
    assert clips.records[1].source is None and "gone.avi" in clips.missing


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a.avi swim\n", "line 1: label 'swim'"),
        ("\nlonely\n", "line 2: expected"),
        ("a.avi run\na.avi jump\n", "already listed on line 1"),
        ("# only a comment\n", "no entries"),
    ],
)
def test_video_list_errors(data: dict[str, Path], tmp_path: Path, content: str, match: str) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(content)
    with pytest.raises(ExtractionError, match=match):
        datasets.video_list(listing, data["classes"])


def test_classes_file_errors(tmp_path: Path) -> None:
    dupes = tmp_path / "classes.txt"
    dupes.write_text("a\nb\na\n")
    with pytest.raises(ExtractionError, match="more than once"):
        datasets.read_class_names(dupes)
    with pytest.raises(ExtractionError, match="does not exist"):
        datasets.read_class_names(tmp_path / "none.txt")


def test_shard_parse() -> None:
    assert Shard.parse("1/3") == Shard(1, 3)
    assert [r for r in Shard(1, 3).select(list(range(8)))] == [1, 4, 7]
    for text in ("3/3", "x", "1-3", "-1/2"):
        with pytest.raises(ExtractionError, match="shard"):
            Shard.parse(text)


# ------------------------------------------------------------------------------------ weights


def test_trunk_matches_torchvision_inception5b() -> None:
    model, _, _ = load_googlenet("random", seed=3)
    model.eval()
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    captured = {}
    model.inception5b.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        model((frames.permute(0, 3, 1, 2).float() / 255 - mean) / std)  # what torchvision's transforms give
        ours = GoogLeNetTrunk(model).eval()(frames)
    torch.testing.assert_close(ours, captured["out"], rtol=1e-4, atol=1e-4)


def test_random_weights_are_seeded() -> None:
    a, identity, notes = load_googlenet("random", seed=1)
    b, _, _ = load_googlenet("random", seed=1)
    c, _, _ = load_googlenet("random", seed=2)
    assert identity == "random-init:seed=1" and notes == []
    assert torch.equal(a.conv1.conv.weight, b.conv1.conv.weight)
    assert not torch.equal(a.conv1.conv.weight, c.conv1.conv.weight)


def test_imagenet_weights_load_from_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = imagenet_weights_path()
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / IMAGENET_FILE
    with pytest.raises(ExtractionError) as missing:
        load_googlenet("imagenet")
    assert str(path) in str(missing.value) and "--weights random" in str(missing.value)

    # a stand-in file: torchvision's layout (aux heads included), but not the published bytes
    reference, _, _ = load_googlenet("random", seed=5)
    full = googlenet(weights=None, aux_logits=True, init_weights=False)
    full.load_state_dict(reference.state_dict(), strict=False)
    path.parent.mkdir(parents=True)
    torch.save(full.state_dict(), path)
    backbone = Backbone.build("imagenet", device="cpu")
    assert backbone.identity.startswith(f"file:{IMAGENET_FILE}:sha256=")  # honest: not the real file
    assert any("not torchvision's published ImageNet file" in n for n in backbone.notes)
    seeded = Backbone.build("random", seed=5, device="cpu")
    frames = torch.randint(0, 256, (1, 224, 224, 3), dtype=torch.uint8)
    out = backbone(frames)
    assert out.shape == (1, 7, 7, 1024) and out.dtype == torch.float16 and bool((out >= 0).all())
    assert torch.equal(out, seeded(frames))
    by_path = Backbone.build(str(path), device="cpu")
    assert by_path.identity == backbone.identity


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="no such file"):
        load_googlenet(str(tmp_path / "none.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ExtractionError, match="Cannot read weights file"):
        load_googlenet(str(junk))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ExtractionError, match="not a torchvision GoogLeNet state_dict"):
        load_googlenet(str(other))


def test_device_choice() -> None:
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ExtractionError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ExtractionError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_hmdb51_empty_class_folder_keeps_the_labels(data: dict[str, Path], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    for cls in ("brush_hair", "wave"):
        (videos / cls).mkdir(parents=True)
        for f in (data["videos"] / cls).iterdir():
            (videos / cls / f.name).write_bytes(f.read_bytes())
    (videos / "shoot_ball").mkdir()  # not unpacked yet
    clips = datasets.hmdb51(videos, data["splits"])
    assert clips.class_names == ["brush_hair", "shoot_ball", "wave"]
    assert {r.labels[0] for r in clips.records if r.video_id.startswith("wave/")} == {2}
    assert any("holds no videos" in line for line in clips.report)
