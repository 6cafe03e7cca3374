"""Feature extraction end to end on tiny videos: stores, resume, shards + merge, the CLI, the envs.

The network is the real GoogLeNet (random seeded weights), so frames are kept few: T = 4, 7 HMDB-like
clips, batches of 8. The uninterrupted HMDB-51 store is built once and compared against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from video_fixtures import make_all_datasets

from envs.periphery import PERIPHERY_TRANSFORM, periphery
from envs.store import FeatureStore, IncompleteStoreError, StoreFormatError, StoreWriter
from feature_extractors import ExtractOptions, datasets, extract, merge
from feature_extractors.cli import main
from feature_extractors.errors import ExtractionError
from feature_extractors.extract import Shard

pytestmark = pytest.mark.slow  # the extraction pipeline end to end: decoding workers and GoogLeNet on CPU

T = 4
FAST = ExtractOptions(
    frames=T, fps=10.0, weights="random", seed=0, device="cpu", batch_size=8, workers=1, progress=False
)
CLI_FAST = ["-T", str(T), "--weights", "random", "--device", "cpu", "--batch-size", "8", "--no-progress"]


def options(**changes: object) -> ExtractOptions:
    return ExtractOptions(**{**FAST.__dict__, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_all_datasets(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def hmdb(data: dict[str, Path]) -> datasets.ClipList:
    return datasets.hmdb51(data["videos"], data["splits"])


@pytest.fixture(scope="module")
def hmdb_store(hmdb: datasets.ClipList, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stores") / "hmdb51"
    summary = extract(hmdb, out, FAST)
    assert summary.complete and summary.clips_done == 5 and summary.clips_failed == 2
    return out


@pytest.fixture(scope="module")
def anet_store(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stores") / "activitynet"
    args = ["activitynet", "--videos", str(data["anet_videos"]), "--annotations", str(data["annotations"])]
    assert main([*args, "--out", str(out), *CLI_FAST, "--workers", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def list_store(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stores") / "mine"
    args = ["videos", "--list", str(data["list"]), "--classes", str(data["classes"])]
    assert main([*args, "--out", str(out), *CLI_FAST, "--workers", "1"]) == 0
    return out


def assert_same_store(a: Path, b: Path) -> None:
    """Byte-identical features, index and meta; the same failures."""
    assert (a / "features.npy").read_bytes() == (b / "features.npy").read_bytes()
    assert (a / "periphery.npy").read_bytes() == (b / "periphery.npy").read_bytes()
    assert (a / "index.jsonl").read_text() == (b / "index.jsonl").read_text()
    assert json.loads((a / "meta.json").read_text()) == json.loads((b / "meta.json").read_text())
    failures = [sorted(json.dumps(f, sort_keys=True) for f in FeatureStore(s).failures) for s in (a, b)]
    assert failures[0] == failures[1]


def test_hmdb51_store(hmdb_store: Path) -> None:
    store = FeatureStore(hmdb_store)
    assert store.features.shape == (7, T, 7, 7, 1024) and store.features.dtype == np.float16
    assert store.meta["weights"] == "random-init:seed=0"  # nobody mistakes these for ImageNet features
    assert store.meta["fps"] == 10.0 and store.meta["sampling"] == "fixed-rate" and store.meta["frames"] == T
    assert store.meta["layer"] == "inception5b" and store.meta["input_size"] == 224
    assert store.splits == ["1", "2", "3"] and store.subsets == ["train", "test"]
    by_id = {r.video_id: (row, r) for row, r in zip(store.rows, store.records, strict=True)}
    assert sorted(by_id) == [
        "brush_hair/brush_hair_a.avi", "brush_hair/brush_hair_b.avi", "shoot_ball/shoot_ball_c.avi",
        "shoot_ball/shoot_ball_short.avi", "wave/wave_e.avi",
    ]  # fmt: skip
    row, short = by_id["shoot_ball/shoot_ball_short.avi"]
    assert short.labels == [1] and short.valid_frames == 2 and short.timestamps == [0.0, 0.1, 0.1, 0.1]
    assert short.subset == {"1": "test", "2": "train", "3": "train"}
    np.testing.assert_array_equal(store.features[row, 2], store.features[row, 1])  # padding repeats
    row, long = by_id["brush_hair/brush_hair_a.avi"]
    assert long.valid_frames == T and long.timestamps == [0.0, 0.1, 0.2, 0.3]
    features = np.asarray(store.features[store.rows], dtype=np.float32)
    assert np.isfinite(features).all() and (features >= 0).all() and (features > 0).mean() > 0.1
    assert not np.array_equal(store.features[row, 0], store.features[row, 1])  # different frames differ
    reasons = {f["video_id"]: f["reason"] for f in store.failures}
    assert "cannot open" in reasons["wave/wave_corrupt.avi"] and "empty" in reasons["wave/wave_empty.avi"]
    # Extraction writes the peripheral view of every clip (k = 64 at D = 1024) beside the features.
    assert store.meta["periphery"] == {"transform": PERIPHERY_TRANSFORM, "dim": 64}
    expected = periphery(store.features[store.rows], 64).astype(np.float16)
    np.testing.assert_array_equal(store.open_periphery(64)[store.rows], expected)


def test_resume_after_interruption_equals_an_uninterrupted_run(
    hmdb: datasets.ClipList, hmdb_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    original = StoreWriter.write_clip
    calls = []

    def interrupted_write(self: StoreWriter, row: int, *args: object, **kwargs: object) -> None:
        calls.append(row)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third clip is being written
        original(self, row, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "write_clip", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        extract(hmdb, out, FAST)
    monkeypatch.setattr(StoreWriter, "write_clip", original)
    with pytest.raises(IncompleteStoreError, match="Run the same"):
        FeatureStore(out)
    # simulate a kill -9 in the middle of the next write: garbage in an unfinished row, a torn log line
    done = [json.loads(line)["row"] for line in (out / "done.jsonl").read_text().splitlines()]
    assert len(done) == 2
    features = np.load(out / "features.npy", mmap_mode="r+")
    pending = next(r for r in range(7) if r not in done and r not in (4, 6))
    features[pending] = 7.0
    features.flush()
    del features
    with open(out / "done.jsonl", "a") as f:
        f.write(f'{{"row": {pending}, "valid_fr')

    summary = extract(hmdb, out, FAST)
    assert summary.clips_done_before == 2 and summary.clips_done == 3  # finished clips are not recomputed
    assert_same_store(out, hmdb_store)


def test_shards_merge_into_the_single_run_store(hmdb: datasets.ClipList, hmdb_store: Path, tmp_path: Path) -> None:
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        summary = extract(hmdb, part, options(shard=Shard(i, 2), workers=0))
        assert summary.clips_total == len(Shard(i, 2).select(hmdb.records))
        assert FeatureStore(part).meta["shard"] == f"{i}/2"
    assert main(["merge", "--out", str(tmp_path / "merged"), str(parts[1]), str(parts[0]), "--no-progress"]) == 0
    assert_same_store(tmp_path / "merged", hmdb_store)


def test_merge_errors(hmdb: datasets.ClipList, hmdb_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="not a shard store"):
        merge([hmdb_store], tmp_path / "m1", progress=False)
    with pytest.raises(ExtractionError, match="Cannot merge shard"):
        merge([tmp_path / "nothing"], tmp_path / "m2", progress=False)


def test_merge_needs_every_shard(hmdb_store: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake0"
    fake.mkdir()
    for name in ("features.npy", "index.jsonl", "failures.jsonl"):
        (fake / name).write_bytes((hmdb_store / name).read_bytes())
    meta = json.loads((hmdb_store / "meta.json").read_text())
    (fake / "meta.json").write_text(json.dumps({**meta, "shard": "0/2"}))
    with pytest.raises(ExtractionError, match="every shard 0/2 .. 1/2"):
        merge([fake], tmp_path / "m", progress=False)


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({"frames": T + 1}, "frames"),
        ({"fps": 5.0}, "fps"),
        ({"seed": 1}, "weights"),
        ({"fps": None}, "sampling"),
    ],
)
def test_store_made_with_other_settings_is_refused(
    hmdb: datasets.ClipList, hmdb_store: Path, change: dict, differs: str
) -> None:
    before = (hmdb_store / "meta.json").read_text()
    with pytest.raises(StoreFormatError, match=f"other settings.*{differs}"):
        extract(hmdb, hmdb_store, options(**change))
    assert (hmdb_store / "meta.json").read_text() == before


def test_rerunning_a_finished_store_does_nothing(hmdb: datasets.ClipList, hmdb_store: Path) -> None:
    before = (hmdb_store / "features.npy").stat().st_mtime_ns
    summary = extract(hmdb, hmdb_store, FAST)
    assert summary.clips_done == 0 and summary.clips_done_before == 5 and summary.complete
    assert (hmdb_store / "features.npy").stat().st_mtime_ns == before


def test_activitynet_store(anet_store: Path) -> None:
    store = FeatureStore(anet_store)
    assert store.class_names == ["Archery", "Bowling", "Surfing"]
    assert store.subsets == ["training", "validation"] and store.meta["sampling"] == "spread"
    by_id = {r.video_id: r for r in store.records}
    assert sorted(by_id) == ["vidA", "vidB"]
    assert by_id["vidB"].labels == [0, 2] and by_id["vidB"].subset == "validation"
    assert by_id["vidB"].segments == [[0.0, 1.0, 0], [1.5, 2.5, 2], [2.6, 3.0, 0]]
    # 36 frames at 12 fps, T = 4 spread: frames 4, 13, 22, 31
    assert by_id["vidB"].timestamps == pytest.approx([4 / 12, 13 / 12, 22 / 12, 31 / 12], abs=1e-4)
    assert by_id["vidA"].timestamps == pytest.approx([0.2, 0.7, 1.2, 1.7], abs=1e-4)
    assert [(f["video_id"], "missing on disk" in f["reason"]) for f in store.failures] == [("vidMissing", True)]


def test_video_list_store_and_reproducible_random_features(
    data: dict[str, Path], list_store: Path, tmp_path: Path
) -> None:
    store = FeatureStore(list_store)
    assert store.class_names == ["run", "jump"]
    assert [(r.video_id, r.labels, r.subset) for r in store.records] == [
        ("my clips/jump 1.avi", [1], "train"),
        ("my clips/run.avi", [0], "test"),
        ("my clips/both.avi", [0, 1], "train"),
    ]
    assert store.records[1].valid_frames == T  # 9 frames at 10 fps cover 0 .. 0.3 s
    again = extract(datasets.video_list(data["list"], data["classes"]), tmp_path / "again", options(workers=0))
    assert again.clips_done == 3
    assert (tmp_path / "again" / "features.npy").read_bytes() == (list_store / "features.npy").read_bytes()


def test_envs_open_the_stores(hmdb_store: Path, anet_store: Path, list_store: Path) -> None:
    import envs  # noqa: F401  (registers the ids)

    cases = [
        ("HMDB51Glimpse-v0", {"data_root": str(hmdb_store), "split": 1, "subset": "train"}),
        ("HMDB51Glimpse-v0", {"data_root": str(hmdb_store), "split": 3, "subset": "test"}),
        ("ActivityNetGlimpse-v0", {"data_root": str(anet_store), "subset": "training"}),
        ("ActivityNetGlimpse-v0", {"data_root": str(anet_store), "subset": "validation"}),
        ("StoreGlimpse-v0", {"data_root": str(list_store), "subset": "train"}),
    ]
    for env_id, kwargs in cases:
        env = gymnasium.make(env_id, **kwargs)
        check_env(env.unwrapped, skip_render_check=True)
        env.close()


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["hmdb51", "--help"],
        ["activitynet", "--help"],
        ["videos", "--help"],
        ["merge", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "googlenet-1378be20.pth" in text and "--shard" in text and "testTrainMulti_7030_splits" in text


def test_cli_errors(data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "s"), *CLI_FAST]
    assert main(["hmdb51", "--videos", str(tmp_path / "none"), "--splits", str(data["splits"]), *out]) == 2
    assert "HMDB-51 videos folder" in capsys.readouterr().err
    assert main(["videos", "--list", str(data["list"]), *out[:2], "--weights", str(tmp_path / "w.pth")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["videos", "--list", str(data["list"]), *out, "--shard", "2/2"])
    assert exit_.value.code == 2 and "0 <= i < n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["videos", "--list", str(data["list"]), *out, "--fps", "0"])
    assert "positive" in capsys.readouterr().err


def test_workers_start_clean_after_the_caller_used_opencv_threads(data: dict[str, Path], tmp_path: Path) -> None:
    """Workers must not inherit the caller's OpenCV thread pool: a forked child of a process that had
    used it deadlocked (intermittently) in cv2. Workers start from a fork server; the run must finish."""
    script = f"""
import cv2, numpy as np
from feature_extractors import ExtractOptions, datasets, extract
cv2.setNumThreads(2)
for _ in range(20):
    cv2.GaussianBlur(np.zeros((720, 1280, 3), np.uint8), (0, 0), 5)  # the caller's own OpenCV work
clips = datasets.video_list({str(data["list"])!r}, {str(data["classes"])!r})
clips.records = clips.records[1:2]
opts = ExtractOptions(frames=2, weights="random", device="cpu", batch_size=2, workers=1, progress=False)
print(extract(clips, {str(tmp_path / "s")!r}, opts).clips_done)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
