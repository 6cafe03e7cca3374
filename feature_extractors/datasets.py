"""Clip lists: what to extract, with labels, subsets and segments, for each kind of dataset.

Each builder reads the dataset's own files (folders, split files, annotation JSON, a user's list) and
returns a ``ClipList``: the store's class names and one ``envs.store.ClipRecord`` per clip, plus a
report of anything odd it noticed (printed before extraction; never fatal). Problems that make the
input unusable raise ``ExtractionError`` with what to fix.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.store import TEST, TRAIN, UNUSED, ClipRecord

from .decode import VIDEO_EXTENSIONS
from .errors import ExtractionError

HMDB51_SPLITS = ("1", "2", "3")
HMDB51_TAGS = {"0": UNUSED, "1": TRAIN, "2": TEST}
HMDB51_PER_FILE = (70, 30)
HMDB51_NUM_CLASSES = 51
ACTIVITYNET_SUBSETS = ("training", "validation", "testing")
#: Format tag of an actor box file (``read_actor_boxes``); ``feature_extractors render`` writes one.
ACTOR_BOXES_FORMAT = "actor-boxes/v1"
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


@dataclass
class ClipList:
    """Everything the extractor needs to know about a dataset before decoding a frame.

    ``records[i].source`` is the video file (``None`` when it is missing on disk; ``missing[video_id]``
    then says why). ``subsets`` / ``splits`` go to the store's meta (see ``envs.store``).
    """

    dataset: str
    class_names: list[str]
    records: list[ClipRecord]
    subsets: list[str]
    splits: list[str] | None = None
    missing: dict[str, str] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)
    #: Actor boxes by video id (``read_actor_boxes``); the extractor turns them into the store's ``core.npy``.
    actors: dict[str, ActorTrack] | None = None


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _need_dir(path: Path, what: str, fix: str) -> Path:
    if not path.exists():
        raise ExtractionError(f"{what} '{path}' does not exist. {fix}")
    if not path.is_dir():
        raise ExtractionError(f"{what} '{path}' is not a folder. {fix}")
    return path


def _need_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise ExtractionError(f"{what} '{path}' {'is a folder' if path.is_dir() else 'does not exist'}. {fix}")
    return path


# ----------------------------------------------------------------------------------------- HMDB-51


def _official_proportion(train: int, test: int) -> bool:
    """70 train to 30 test (HMDB-51's files; a smaller dataset in its layout, such as a render, keeps the ratio)."""
    return train > 0 and train * HMDB51_PER_FILE[1] == test * HMDB51_PER_FILE[0]


def read_hmdb51_split_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """Parse one ``<class>_test_split<k>.txt``: clip file name -> train/test/unused, plus problems seen."""
    tags: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in HMDB51_TAGS:
            problems.append(
                f"{path.name} line {number}: expected '<clip file name> <0|1|2>', got {line.strip()!r} (ignored)"
            )
            continue
        name, subset = parts[0], HMDB51_TAGS[parts[1]]
        if name in tags and tags[name] != subset:
            problems.append(f"{path.name} line {number}: '{name}' is listed twice with different tags")
        tags[name] = subset
    counts = Counter(tags.values())
    if not _official_proportion(counts[TRAIN], counts[TEST]):
        problems.append(
            f"{path.name}: {counts[TRAIN]} train / {counts[TEST]} test clips "
            f"(the official files have {HMDB51_PER_FILE[0]} / {HMDB51_PER_FILE[1]})"
        )
    return tags, problems


def hmdb51(videos: str | Path, splits: str | Path) -> ClipList:
    """Every clip under ``videos/<class>/`` with its label and train/test/unused tag in splits 1-3.

    Labels index the sorted class folder names; split membership comes from the official
    ``<class>_test_split<1|2|3>.txt`` files in ``splits`` (matched by clip file name).
    """
    root = _need_dir(
        Path(videos),
        "HMDB-51 videos folder",
        "Pass --videos <folder holding the 51 class folders of .avi clips>.",
    )
    split_dir = _need_dir(
        Path(splits),
        "HMDB-51 splits folder",
        "Pass --splits <folder of the 153 *_test_split[1-3].txt files> "
        "(unpack test_train_splits.rar; it is usually called testTrainMulti_7030_splits).",
    )
    # every folder is a class (as in torchvision), so one left empty cannot shift the other labels
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not any(_is_video(f) for d in class_dirs for f in d.iterdir()):
        raise ExtractionError(
            f"No class folders with videos in '{root}'. HMDB-51 unpacks to one folder per class "
            "(brush_hair/, cartwheel/, ...) holding .avi clips; unpack every per-class .rar there and pass "
            "the folder that contains them as --videos."
        )
    split_files: dict[tuple[str, str], Path] = {}
    for f in sorted(split_dir.iterdir()):
        m = _SPLIT_FILE.match(f.name)
        if m:
            split_files[(m["cls"], m["split"])] = f
    if not split_files:
        raise ExtractionError(
            f"No split files (<class>_test_split<1|2|3>.txt) in '{split_dir}'. Pass the unpacked "
            "testTrainMulti_7030_splits folder as --splits."
        )

    class_names = [d.name for d in class_dirs]
    report: list[str] = []
    if len(class_names) != HMDB51_NUM_CLASSES:
        report.append(f"found {len(class_names)} class folders in '{root}'; HMDB-51 has {HMDB51_NUM_CLASSES}")
    for cls, split in sorted(set(split_files) - {(c, s) for c in class_names for s in HMDB51_SPLITS}):
        report.append(f"split file {split_files[(cls, split)].name} has no class folder '{cls}' (ignored)")

    records: list[ClipRecord] = []
    totals: dict[str, Counter[str]] = {s: Counter() for s in HMDB51_SPLITS}
    for label, class_dir in enumerate(class_dirs):
        clips = sorted(f for f in class_dir.iterdir() if _is_video(f))
        if not clips:
            report.append(
                f"class folder '{class_dir}' holds no videos (label {label} has no clips; unpack its .rar there?)"
            )
        on_disk = {f.name for f in clips}
        membership: dict[str, dict[str, str]] = {f.name: {} for f in clips}
        for split in HMDB51_SPLITS:
            path = split_files.get((class_dir.name, split))
            if path is None:
                report.append(
                    f"no split file {class_dir.name}_test_split{split}.txt: "
                    f"class '{class_dir.name}' is unused in split {split}"
                )
                tags: dict[str, str] = {}
            else:
                tags, problems = read_hmdb51_split_file(path)
                report.extend(problems)
                absent = sorted(set(tags) - on_disk)
                if absent:
                    report.append(
                        f"{path.name}: {len(absent)} listed clip(s) not found in '{class_dir}': "
                        + ", ".join(absent[:3])
                        + (" ..." if len(absent) > 3 else "")
                    )
                unlisted = sorted(on_disk - set(tags))
                if unlisted and path is not None:
                    report.append(
                        f"{path.name}: {len(unlisted)} clip(s) of '{class_dir.name}' not listed (unused in split "
                        f"{split}): " + ", ".join(unlisted[:3]) + (" ..." if len(unlisted) > 3 else "")
                    )
            for name in on_disk:
                membership[name][split] = tags.get(name, UNUSED)
                totals[split][membership[name][split]] += 1
        for f in clips:
            records.append(
                ClipRecord(
                    video_id=f"{class_dir.name}/{f.name}",
                    labels=[label],
                    subset=membership[f.name],
                    source=str(f.absolute()),
                )
            )
    for split in HMDB51_SPLITS:
        n_train, n_test = totals[split][TRAIN], totals[split][TEST]
        expected = (HMDB51_PER_FILE[0] * len(class_names), HMDB51_PER_FILE[1] * len(class_names))
        full_size = len(class_names) == HMDB51_NUM_CLASSES
        if not _official_proportion(n_train, n_test) or (full_size and (n_train, n_test) != expected):
            report.append(
                f"split {split}: {n_train} train / {n_test} test clips on disk "
                f"(expected {expected[0]} / {expected[1]} for {len(class_names)} classes)"
            )
    return ClipList("hmdb51", class_names, records, subsets=[TRAIN, TEST], splits=list(HMDB51_SPLITS), report=report)


# ------------------------------------------------------------------------------------- ActivityNet


def _index_videos(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Video files under ``folder`` (recursively) by id: the file stem, and the stem without ``v_``."""
    found: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(folder.rglob("*")):
        if _is_video(f):
            found[f.stem].append(f)
            if f.stem.startswith("v_"):
                found[f.stem[2:]].append(f)
    report = [
        f"video '{key}' has {len(paths)} files; using {paths[0].name}"
        for key, paths in found.items()
        if len(paths) > 1 and not key.startswith("v_")
    ]
    return {key: paths[0] for key, paths in found.items()}, report


def activitynet(
    videos: str | Path,
    annotations: str | Path,
    subsets: list[str] | tuple[str, ...] = ("training", "validation"),
) -> ClipList:
    """The videos of ``subsets`` in an ActivityNet annotation file (v1.3 format), multi-label with segments.

    Class names are the sorted distinct annotation labels of the whole file (all subsets), so class
    indices do not depend on which subsets are extracted. Each record keeps the labelled segments as
    ``[start_s, end_s, class_index]``. Videos are found under ``videos`` as ``<id>.<ext>`` or
    ``v_<id>.<ext>``; missing ones stay in the list with ``source=None`` (recorded as failures).
    """
    folder = _need_dir(Path(videos), "ActivityNet videos folder", "Pass --videos <folder of the downloaded videos>.")
    ann_path = _need_file(
        Path(annotations),
        "ActivityNet annotation file",
        "Pass --annotations <activity_net.v1-3.min.json> (from the ActivityNet website).",
    )
    try:
        data = json.loads(ann_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExtractionError(f"'{ann_path}' is not valid JSON ({err}). Pass activity_net.v1-3.min.json.") from None
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise ExtractionError(
            f"'{ann_path}' has no 'database' object; it is not an ActivityNet annotation file "
            "(expected the activity_net.v1-3.min.json format: version / taxonomy / database)."
        )
    unknown = sorted(set(subsets) - set(ACTIVITYNET_SUBSETS))
    if unknown or not subsets:
        raise ExtractionError(
            f"Unknown ActivityNet subset(s) {unknown or '(none given)'}; choose from {', '.join(ACTIVITYNET_SUBSETS)}."
        )
    try:
        class_names = sorted({a["label"] for v in database.values() for a in v.get("annotations", [])})
    except (KeyError, TypeError, AttributeError):
        raise ExtractionError(
            f"'{ann_path}': an annotation lacks a 'label'; expected {{'label': name, 'segment': [start, end]}}."
        ) from None
    class_index = {name: i for i, name in enumerate(class_names)}
    on_disk, report = _index_videos(folder)

    records: list[ClipRecord] = []
    missing: dict[str, str] = {}
    unlabelled = []
    for video_id in sorted(database):
        entry = database[video_id]
        if entry.get("subset") not in subsets:
            continue
        annotations_ = entry.get("annotations") or []
        if not annotations_:
            unlabelled.append(video_id)
            continue
        segments = [[float(a["segment"][0]), float(a["segment"][1]), class_index[a["label"]]] for a in annotations_]
        labels = sorted({int(s[2]) for s in segments})
        source = on_disk.get(video_id)
        if source is None:
            missing[video_id] = f"video missing on disk: no {video_id}.* or v_{video_id}.* under {folder}"
        records.append(
            ClipRecord(
                video_id=video_id,
                labels=labels,
                subset=entry["subset"],
                source=str(source.absolute()) if source else None,
                segments=segments,
            )
        )
    if unlabelled:
        report.append(
            f"{len(unlabelled)} video(s) of the chosen subsets have no annotations and are skipped "
            f"(the 'testing' subset's labels are withheld): "
            + ", ".join(unlabelled[:3])
            + (" ..." if len(unlabelled) > 3 else "")
        )
    if not records:
        raise ExtractionError(
            f"No labelled videos of subset(s) {', '.join(subsets)} in '{ann_path}'. "
            "Choose --subsets training validation."
        )
    if missing:
        report.append(
            f"{len(missing)} of {len(records)} videos are missing on disk (recorded in failures.jsonl): "
            + ", ".join(list(missing)[:5])
            + (" ..." if len(missing) > 5 else "")
        )
    return ClipList(
        "activitynet",
        class_names,
        records,
        subsets=[s for s in ACTIVITYNET_SUBSETS if s in subsets],
        missing=missing,
        report=report,
    )


# ---------------------------------------------------------------------------------- a user's list


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines and ``#`` comments ignored); the line order is the index."""
    path = _need_file(Path(path), "Classes file", "Pass --classes <file with one class name per line>.")
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ExtractionError(f"Classes file '{path}' lists {', '.join(dupes)} more than once; each name once.")
    if not names:
        raise ExtractionError(f"Classes file '{path}' is empty; write one class name per line.")
    return names


def video_list(list_file: str | Path, classes: str | Path | None = None, root: str | Path | None = None) -> ClipList:
    """Clips from a text file with one ``<path> <label>[,<label>...] [train|test]`` per line.

    Paths are relative to ``root`` (default: the list file's folder) unless absolute; they may contain
    spaces. A label is a name from ``classes`` (or its 0-based index); without ``classes`` the class
    names are the sorted distinct labels of the list. The optional third column is the subset
    (default ``train``). Files missing on disk stay in the list and are recorded as failures.
    """
    list_path = _need_file(
        Path(list_file),
        "Video list",
        "Pass --list <file with one '<video path> <label> [train|test]' per line>.",
    )
    base = Path(root) if root is not None else list_path.parent
    rows: list[tuple[int, str, list[str], str]] = []
    for number, raw in enumerate(list_path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=2)
        if len(parts) == 3 and parts[2] in (TRAIN, TEST):
            path, label, subset = parts
        else:
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ExtractionError(
                    f"{list_path} line {number}: expected '<video path> <label> [train|test]', got {line!r}."
                )
            path, label = parts
            subset = TRAIN
        rows.append((number, path, label.split(","), subset))
    if not rows:
        raise ExtractionError(f"Video list '{list_path}' has no entries; write one '<video path> <label>' per line.")

    if classes is not None:
        class_names = read_class_names(classes)
    else:
        class_names = sorted({lab for _, _, labels, _ in rows for lab in labels})
    class_index = {name: i for i, name in enumerate(class_names)}

    records: list[ClipRecord] = []
    missing: dict[str, str] = {}
    seen: dict[str, int] = {}
    for number, path, labels, subset in rows:
        indices = []
        for lab in labels:
            if lab in class_index:
                indices.append(class_index[lab])
            elif lab.isdigit() and int(lab) < len(class_names):
                indices.append(int(lab))
            else:
                raise ExtractionError(
                    f"{list_path} line {number}: label '{lab}' is not one of the {len(class_names)} classes in "
                    f"'{classes}' ({', '.join(class_names[:5])}{' ...' if len(class_names) > 5 else ''}). "
                    "Fix the label or add the class to the classes file."
                )
        if path in seen:
            raise ExtractionError(f"{list_path} line {number}: '{path}' is already listed on line {seen[path]}.")
        seen[path] = number
        file = Path(path) if Path(path).is_absolute() else base / path
        if not file.is_file():
            missing[path] = f"video missing on disk: {file}"
        records.append(
            ClipRecord(
                video_id=path,
                labels=sorted(set(indices)),
                subset=subset,
                source=str(file.absolute()) if path not in missing else None,
            )
        )
    report = []
    if missing:
        report.append(
            f"{len(missing)} of {len(records)} listed videos are missing on disk (recorded in failures.jsonl): "
            + ", ".join(list(missing)[:5])
            + (" ..." if len(missing) > 5 else "")
        )
    return ClipList("videos", class_names, records, subsets=[TRAIN, TEST], missing=missing, report=report)


# ------------------------------------------------------------------------------------ actor boxes


@dataclass(frozen=True)
class ActorTrack:
    """Where the actor is in every frame of one video: ``boxes[f]`` lists ``[x0, y0, x1, y1]`` boxes in
    pixels of the ``width`` x ``height`` video (x1, y1 exclusive; an empty list: no actor in frame f)."""

    width: int
    height: int
    boxes: list[list[list[float]]]

    def core(self, frame_numbers: list[int], grid: int) -> np.ndarray:
        """The cells each sampled frame's boxes overlap, bool ``(len(frame_numbers), grid * grid)``.

        The frame is stretched to the square grid as the extractor stretches it to the network's input, so
        cell (r, c) spans ``[c/K, (c+1)/K)`` of the width and ``[r/K, (r+1)/K)`` of the height; a cell is on
        the core when a box covers some of it.
        """
        edges = np.arange(grid + 1) / grid
        mask = np.zeros((len(frame_numbers), grid, grid), dtype=bool)
        for i, number in enumerate(frame_numbers):
            for x0, y0, x1, y1 in self.boxes[number]:
                cols = (edges[:-1] < x1 / self.width) & (edges[1:] > x0 / self.width)
                rows = (edges[:-1] < y1 / self.height) & (edges[1:] > y0 / self.height)
                mask[i] |= rows[:, None] & cols[None, :]
        return mask.reshape(len(frame_numbers), grid * grid)


def _track_from_json(entry: Any, where: str) -> ActorTrack:
    """One video's entry of an actor-box file, checked; ``ExtractionError`` naming ``where`` otherwise."""
    if not isinstance(entry, dict) or not {"width", "height", "frames", "boxes"} <= set(entry):
        raise ExtractionError(f"{where}: expected {{'width', 'height', 'frames', 'boxes'}}, got {str(entry)[:80]!r}.")
    width, height, frames, boxes = entry["width"], entry["height"], entry["frames"], entry["boxes"]
    if not all(isinstance(v, int) and v > 0 for v in (width, height, frames)):
        raise ExtractionError(f"{where}: width, height and frames must be positive integers.")
    if not isinstance(boxes, list) or len(boxes) != frames:
        count = len(boxes) if isinstance(boxes, list) else "no"
        raise ExtractionError(f"{where}: 'frames' says {frames} but 'boxes' has {count} entries; one list per frame.")
    for number, frame_boxes in enumerate(boxes):
        for box in frame_boxes if isinstance(frame_boxes, list) else [None]:
            ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)
            if not ok:
                raise ExtractionError(f"{where}, frame {number}: a box must be [x0, y0, x1, y1], got {box!r}.")
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise ExtractionError(
                    f"{where}, frame {number}: box {box} lies outside the {width} x {height} frame (or is empty); "
                    "boxes are [x0, y0, x1, y1] pixels with 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height."
                )
    return ActorTrack(width, height, boxes)


def read_actor_boxes(path: str | Path, clips: ClipList) -> dict[str, ActorTrack]:
    """The actor boxes of every clip of ``clips`` from an actor-box file, checked against the videos.

    Format (JSON): ``{"format": "actor-boxes/v1", "videos": {video_id: {"width": W, "height": H,
    "frames": N, "boxes": [[[x0, y0, x1, y1], ...], ...]}}}`` with one list of boxes per decoded frame of
    the video (N of them), in pixels of the W x H video. ``video_id`` is the store's id of the clip:
    ``<class>/<file>`` for HMDB-51, the video id for ActivityNet, the listed path for a video list.
    Every clip with a video on disk needs an entry, its frame count and size must match the file's, and
    every box must lie inside the frame; otherwise ``ExtractionError`` names the clip and the file (checked
    before anything is written, so a bad file never leaves half a store).
    """
    from .decode import video_shape

    path = _need_file(Path(path), "Actor box file", "Pass --actors <actors.json> (format: see --help).")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExtractionError(f"Actor box file '{path}' is not valid JSON ({err}).") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict) or data.get("format") != ACTOR_BOXES_FORMAT:
        raise ExtractionError(
            f"'{path}' is not an actor box file: expected {{'format': '{ACTOR_BOXES_FORMAT}', 'videos': {{...}}}}."
        )
    tracks: dict[str, ActorTrack] = {}
    for record in clips.records:
        if record.source is None:
            continue
        if record.video_id not in videos:
            raise ExtractionError(f"Actor box file '{path}' has no entry for clip '{record.video_id}'; add one.")
        track = _track_from_json(videos[record.video_id], f"'{path}', clip '{record.video_id}'")
        frames, width, height = video_shape(record.source)
        if (width, height) != (track.width, track.height):
            raise ExtractionError(
                f"'{path}', clip '{record.video_id}': boxes are for a {track.width} x {track.height} frame but the "
                f"video '{record.source}' is {width} x {height}."
            )
        if frames != len(track.boxes):
            raise ExtractionError(
                f"'{path}', clip '{record.video_id}': {len(track.boxes)} frames of boxes but the video "
                f"'{record.source}' decodes to {frames} frames; give one list of boxes per frame."
            )
        tracks[record.video_id] = track
    return tracks
