"""Tiny test videos (written with cv2.VideoWriter) whose frames show their own frame number, plus
dataset layouts (HMDB-51 folders and split files, an ActivityNet JSON, a video list) built from them.

Frame ``i`` is split into a 4 x 2 grid of blocks, each black or white: the 8 bits of ``i``. The blocks
survive JPEG compression and resizing to 224 x 224, so ``read_frame_number`` recovers ``i`` from a
decoded, resized frame and tests can check which frames the sampler really took.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 64, 48
_COLS, _ROWS = 4, 2


def frame_image(number: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """BGR frame showing ``number`` (0-255) as 8 black/white blocks."""
    image = np.zeros((height, width, 3), np.uint8)
    bw, bh = width // _COLS, height // _ROWS
    for bit in range(8):
        if number >> bit & 1:
            r, c = divmod(bit, _COLS)
            image[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 255
    return image


def read_frame_number(image: np.ndarray) -> int:
    """Inverse of ``frame_image`` for a frame of any size (RGB or BGR)."""
    height, width = image.shape[:2]
    number = 0
    for bit in range(8):
        r, c = divmod(bit, _COLS)
        y, x = int((r + 0.5) * height / _ROWS), int((c + 0.5) * width / _COLS)
        if image[y, x].mean() > 127:
            number |= 1 << bit
    return number


def write_video(path: Path, frames: int, fps: float, fourcc: str = "MJPG") -> Path:
    """A video of ``frames`` numbered frames at ``fps``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cv2.VideoWriter cannot write {path} with {fourcc}"
    for i in range(frames):
        writer.write(frame_image(i))
    writer.release()
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


#: HMDB-like layout: class -> [(clip file, frames, fps)]; None frames = corrupt, 0 = empty file.
HMDB_CLIPS: dict[str, list[tuple[str, int | None, float]]] = {
    "brush_hair": [("brush_hair_a.avi", 40, 30.0), ("brush_hair_b.avi", 12, 15.0)],
    "shoot_ball": [("shoot_ball_c.avi", 25, 25.0), ("shoot_ball_short.avi", 5, 30.0)],
    "wave": [("wave_e.avi", 30, 30.0), ("wave_corrupt.avi", None, 30.0), ("wave_empty.avi", 0, 30.0)],
}

#: class -> split -> lines of its split file (tag 1 train, 2 test, 0 unused).
HMDB_SPLITS: dict[str, dict[str, list[str]]] = {
    "brush_hair": {
        "1": ["brush_hair_a.avi 1 ", "brush_hair_b.avi 2 ", "brush_hair_ghost.avi 1 "],
        "2": ["brush_hair_a.avi 2 ", "brush_hair_b.avi 1 "],
        "3": ["brush_hair_a.avi 0 ", "brush_hair_b.avi 1 "],
    },
    "shoot_ball": {
        "1": ["shoot_ball_c.avi 1 ", "shoot_ball_short.avi 2 "],
        "2": ["shoot_ball_c.avi 1 ", "shoot_ball_short.avi 1 "],
        "3": ["shoot_ball_c.avi 2 ", "shoot_ball_short.avi 1 "],
    },
    "wave": {
        "1": ["wave_e.avi 1 ", "wave_corrupt.avi 2 ", "wave_empty.avi 0 "],
        "2": ["wave_e.avi 2 ", "wave_corrupt.avi 1 ", "wave_empty.avi 1 "],
        "3": ["wave_e.avi 1 ", "wave_corrupt.avi 1 ", "wave_empty.avi 2 "],
    },
}


def make_hmdb51(root: Path) -> tuple[Path, Path]:
    """Write the HMDB-like videos and split files; returns (videos folder, splits folder)."""
    videos, splits = root / "hmdb51_org", root / "testTrainMulti_7030_splits"
    for cls, clips in HMDB_CLIPS.items():
        for name, frames, fps in clips:
            if frames is None:
                write_corrupt(videos / cls / name)
            elif frames == 0:
                write_empty(videos / cls / name)
            else:
                write_video(videos / cls / name, frames, fps)
    splits.mkdir(parents=True)
    for cls, per_split in HMDB_SPLITS.items():
        for split, lines in per_split.items():
            (splits / f"{cls}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
    return videos, splits


def make_activitynet(root: Path) -> tuple[Path, Path]:
    """Videos and an ActivityNet v1.3-format JSON: two subsets, a multi-label video, a missing video,
    and a testing video without labels. Returns (videos folder, annotation file)."""
    videos = root / "anet_videos"
    write_video(videos / "v_vidA.avi", 20, 10.0)  # found through the v_ prefix
    write_video(videos / "sub" / "vidB.avi", 36, 12.0)  # multi-label, in a subfolder
    database = {
        "vidA": {
            "subset": "training", "duration": 2.0, "resolution": "64x48", "url": "",
            "annotations": [{"label": "Surfing", "segment": [0.5, 1.5]}],
        },
        "vidB": {
            "subset": "validation", "duration": 3.0, "resolution": "64x48", "url": "",
            "annotations": [
                {"label": "Archery", "segment": [0.0, 1.0]},
                {"label": "Surfing", "segment": [1.5, 2.5]},
                {"label": "Archery", "segment": [2.6, 3.0]},
            ],
        },
        "vidMissing": {
            "subset": "training", "duration": 5.0, "resolution": "64x48", "url": "",
            "annotations": [{"label": "Bowling", "segment": [1.0, 2.0]}],
        },
        "vidTest": {"subset": "testing", "duration": 4.0, "resolution": "64x48", "url": "", "annotations": []},
    }  # fmt: skip
    annotations = root / "activity_net.v1-3.min.json"
    annotations.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    return videos, annotations


def make_video_list(root: Path) -> tuple[Path, Path]:
    """A user's list (a path with a space, a default subset, one multi-label line) and classes file."""
    write_video(root / "my clips" / "jump 1.avi", 16, 20.0, fourcc="XVID")
    write_video(root / "my clips" / "run.avi", 9, 10.0)
    write_video(root / "my clips" / "both.avi", 24, 24.0)
    listing = root / "videos.txt"
    listing.write_text(
        "# path label [subset]\n"
        "my clips/jump 1.avi jump train\n"
        "my clips/run.avi run test\n"
        "\n"
        "my clips/both.avi jump,run\n"
    )
    classes = root / "classes.txt"
    classes.write_text("run\njump\n")
    return listing, classes


def make_all_datasets(root: Path) -> dict[str, Path]:
    """All three dataset layouts under ``root``: HMDB-51 folders + splits, ActivityNet, a video list."""
    videos, splits = make_hmdb51(root)
    anet_videos, annotations = make_activitynet(root)
    listing, classes = make_video_list(root)
    return {
        "root": root, "videos": videos, "splits": splits, "anet_videos": anet_videos,
        "annotations": annotations, "list": listing, "classes": classes,
    }  # fmt: skip
