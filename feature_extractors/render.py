"""A rendered action-video benchmark: procedurally drawn clips with a known actor box in every frame.

``python -m feature_extractors render --out data/rendered`` draws a small dataset of videos in HMDB-51's
layout (``videos/<class>/<clip>.avi`` plus official-format split files) or, with ``--layout activitynet``,
untrimmed videos in ActivityNet's layout (``videos/v_<id>.avi`` plus a v1.3-format annotation JSON, the
action filling only some segments, several actions per video). Either way it writes ``actors.json``: the
actor's box in every frame of every video (the format ``read_actor_boxes`` documents), so the existing
``hmdb51`` / ``activitynet`` extraction commands, given ``--actors``, write ``core.npy`` and the store has a
ground-truth core (``on_core``, focus accuracy, the ``oracle`` baseline) like the synthetic benchmark.

A scene is a textured background with one *actor* and ``distractors`` other objects. What makes the
class (``class_by``):

- ``"colour"``: the actor's colour (one hue per class); each distractor wears another class's colour.
- ``"motion"``: the actor's trajectory (eight straight directions, then circles clockwise and
  anticlockwise); each distractor moves with another class's trajectory; all objects share one colour.

What marks the actor among the distractors (``marker``):

- ``"ring"``: a visible white ring around it; every object drifts slowly;
- ``"motion"``: only the actor moves (with ``class_by="colour"`` it wanders and bounces off the borders);
  the distractors stand still, so a single frame cannot tell it from them.

Knobs: ``clutter`` (small static shapes in the background), ``camera_motion`` (a pan of that many pixels
per frame, moving everything on screen), ``occlusion`` (grey bars that sweep across the scene in front of
the objects). Presets (``VARIANTS``): ``marked`` (colour + ring), ``moving`` (colour + motion marker),
``motion`` (trajectory + ring).

Every clip is drawn from ``numpy.random.default_rng([seed, clip_number])``: the same seed gives the same
frames. Frames are square (``size`` px, 224 by default: the backbone's input, so extraction resizes
nothing) and written as Motion-JPEG ``.avi`` (each frame coded on its own, exact frame counts, decodable
by every OpenCV build). numpy and OpenCV only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from envs.files import write_json_atomic

from .datasets import ACTOR_BOXES_FORMAT
from .errors import ExtractionError

ClassBy = Literal["colour", "motion"]
Marker = Literal["ring", "motion"]
Layout = Literal["hmdb51", "activitynet"]

#: The actor-box annotation's file name (its format: ``datasets.read_actor_boxes``).
ACTORS_FILE = "actors.json"
RENDER_FILE = "render.json"
ANNOTATIONS_FILE = "annotations.json"

MOTION_CLASS_NAMES = (
    "right", "down_right", "down", "down_left", "left", "up_left", "up", "up_right", "circle_cw", "circle_ccw",
)  # fmt: skip
COLOUR_CLASS_NAMES = (
    "red", "orange", "yellow", "lime", "green", "teal", "cyan", "blue", "purple", "magenta",
    "rose", "olive", "navy", "maroon", "sky", "mint",
)  # fmt: skip

VARIANTS: dict[str, dict[str, Any]] = {
    "marked": {"class_by": "colour", "marker": "ring"},
    "moving": {"class_by": "colour", "marker": "motion"},
    "motion": {"class_by": "motion", "marker": "ring"},
}

FOURCC = "MJPG"
_RING_COLOUR = (255, 255, 255)
_SPLIT_TAGS = {"train": "1", "test": "2"}


@dataclass(frozen=True)
class RenderSpec:
    """What to draw. Sizes are in pixels of the ``size`` x ``size`` frame; speeds in pixels per frame."""

    variant: str = "marked"
    class_by: ClassBy = "colour"
    marker: Marker = "ring"
    layout: Layout = "hmdb51"
    num_classes: int = 10
    clips_per_class: int = 30
    frames: int = 30
    fps: float = 10.0
    size: int = 224
    distractors: int = 4
    actor_radius: int = 17
    speed: float = 3.0
    clutter: int = 12
    camera_motion: float = 0.0
    occlusion: int = 0
    test_fraction: float = 0.3
    seed: int = 0
    #: ActivityNet layout: frames per untrimmed video and actions (segments) per video.
    untrimmed_frames: int = 120
    segments_per_video: tuple[int, int] = (1, 3)

    @classmethod
    def preset(cls, variant: str, **overrides: Any) -> RenderSpec:
        """The spec of a named variant (``VARIANTS``) with ``overrides`` (None values ignored)."""
        if variant not in VARIANTS:
            raise ExtractionError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        values = {"variant": variant, **VARIANTS[variant], **{k: v for k, v in overrides.items() if v is not None}}
        if overrides.get("distractors") is None:  # the default 4, or as many as the other classes allow
            values["distractors"] = min(cls.distractors, int(values.get("num_classes", cls.num_classes)) - 1)
        return cls(**values).checked()

    def checked(self) -> RenderSpec:
        """This spec, or ``ExtractionError`` naming the first value out of range and the allowed range."""
        limit = len(MOTION_CLASS_NAMES) if self.class_by == "motion" else len(COLOUR_CLASS_NAMES)
        checks = [
            (self.class_by in ("colour", "motion"), f"class_by must be colour or motion, got {self.class_by!r}"),
            (self.marker in ("ring", "motion"), f"marker must be ring or motion, got {self.marker!r}"),
            (self.layout in ("hmdb51", "activitynet"), f"layout must be hmdb51 or activitynet, got {self.layout!r}"),
            (2 <= self.num_classes <= limit, f"--classes must lie in [2, {limit}] for {self.class_by} classes"),
            (self.clips_per_class >= 2, "--clips-per-class must be >= 2 (at least one train and one test clip)"),
            (self.frames >= 2, "--frames must be >= 2"),
            (0 <= self.distractors < self.num_classes, f"--distractors must lie in [0, {self.num_classes - 1}]"),
            (64 <= self.size <= 1024, "--size must lie in [64, 1024]"),
            (0 < self.test_fraction < 1, "the test fraction must lie in (0, 1)"),
            (self.clutter >= 0 and self.occlusion >= 0, "--clutter and --occlusion must be >= 0"),
            (self.camera_motion >= 0, "--camera-motion must be >= 0"),
            (
                self.untrimmed_frames >= 2 * self.segments_per_video[1],
                f"--video-frames must be >= {2 * self.segments_per_video[1]} (two frames per segment at least)",
            ),
            (self.seed >= 0, "--seed must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ExtractionError(message)
        return self

    @property
    def class_names(self) -> list[str]:
        names = MOTION_CLASS_NAMES if self.class_by == "motion" else COLOUR_CLASS_NAMES
        return list(names[: self.num_classes])

    @property
    def num_clips(self) -> int:
        return self.num_classes * self.clips_per_class


def class_colours(count: int) -> np.ndarray:
    """``count`` saturated RGB colours with evenly spaced hues: (count, 3) uint8."""
    hues = (np.arange(count) * 180 // count).astype(np.uint8)  # OpenCV hue runs over [0, 180)
    hsv = np.stack([hues, np.full(count, 230, np.uint8), np.full(count, 235, np.uint8)], axis=-1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


# ------------------------------------------------------------------------------------------- motion


def _trajectory(kind: int, start: np.ndarray, steps: int, speed: float, phase: float) -> np.ndarray:
    """Positions (steps, 2) of motion class ``kind`` (0-7: a straight heading, 8/9: circle cw/ccw)."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    if kind < 8:
        angle = kind * math.pi / 4  # 0 = right; image y grows downwards, so pi/2 = down
        return start + t * speed * np.array([math.cos(angle), math.sin(angle)])
    radius = 4.0 * speed
    sign = 1.0 if kind == 8 else -1.0
    angle = phase + sign * t[:, 0] * speed / radius
    return start + radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _path_extent(kind: int, steps: int, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest offset from the start of a trajectory (for placing it inside the frame)."""
    path = _trajectory(kind, np.zeros(2), steps, speed, 0.0)
    if kind >= 8:  # any phase: the whole circle around its centre
        radius = 4.0 * speed
        return np.full(2, -2 * radius), np.full(2, 2 * radius)
    return path.min(axis=0), path.max(axis=0)


def _wander(
    rng: np.random.Generator, start: np.ndarray, steps: int, speed: float, low: float, high: float
) -> np.ndarray:
    """A straight walk in a random heading that bounces off the box [low, high]^2: (steps, 2)."""
    angle = rng.uniform(0, 2 * math.pi)
    velocity = speed * np.array([math.cos(angle), math.sin(angle)])
    position = start.astype(np.float64).copy()
    path = np.empty((steps, 2))
    for i in range(steps):
        path[i] = position
        position = position + velocity
        for axis in range(2):
            if not low <= position[axis] <= high:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], low, high)
    return path


# ------------------------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """One drawn clip: frames, the actor's box per frame (None where it is not in view) and its label."""

    frames: np.ndarray  # uint8 RGB (T, size, size, 3)
    boxes: list[list[int] | None]
    label: int


class SceneRenderer:
    """Draws clips of one spec; ``draw(label, rng, steps, active)`` returns a ``Scene``.

    ``active[t]`` says whether the actor performs its action in frame t (an untrimmed video's segments);
    where it does not, it is absent from the scene (its box is None).
    """

    def __init__(self, spec: RenderSpec) -> None:
        self.spec = spec
        self.colours = class_colours(spec.num_classes)
        self.neutral = np.array([200, 200, 200], dtype=np.uint8)

    def _background(self, rng: np.random.Generator, side: int) -> np.ndarray:
        """A smooth grey gradient with static clutter shapes: uint8 (side, side, 3)."""
        spec = self.spec
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
        a, b = rng.uniform(-1, 1, size=2)
        grey = 95 + 25 * (a * x + b * y)
        image = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
        scale = side / spec.size
        for _ in range(round(spec.clutter * scale * scale)):
            colour = tuple(int(v) for v in rng.integers(60, 150, size=3))
            cx, cy = rng.integers(0, side, size=2)
            w, h = rng.integers(4, 14, size=2)
            cv2.rectangle(image, (int(cx), int(cy)), (int(cx + w), int(cy + h)), colour, -1)
        return image

    def _paths(self, rng: np.random.Generator, label: int, steps: int) -> tuple[list[np.ndarray], list[int]]:
        """Centre paths (steps, 2) of the actor (first) and the distractors, and each one's class."""
        spec = self.spec
        r = spec.actor_radius
        others = rng.permutation([c for c in range(spec.num_classes) if c != label])[: spec.distractors]
        classes = [label, *(int(c) for c in others)]
        low, high = r + 2.0, spec.size - r - 2.0
        starts: list[np.ndarray] = []
        paths: list[np.ndarray] = []
        for index, cls in enumerate(classes):
            moves = spec.marker != "motion" or index == 0
            if spec.class_by == "motion" and moves:
                lo, hi = _path_extent(cls, steps, spec.speed)
                lo_start, hi_start = low - lo, high - hi
                # a path longer than the frame: centre it (it leaves the frame for a while)
                lo_start, hi_start = np.minimum(lo_start, hi_start), np.maximum(lo_start, hi_start)
            else:
                lo_start, hi_start = np.full(2, low), np.full(2, high)
            start = self._place(rng, lo_start, hi_start, starts, 2.4 * r)
            starts.append(start)
            if not moves:
                path = np.repeat(start[None], steps, axis=0)
            elif spec.class_by == "motion":
                path = _trajectory(cls, start, steps, spec.speed, rng.uniform(0, 2 * math.pi))
            else:
                speed = spec.speed if spec.marker == "motion" else spec.speed / 2
                path = _wander(rng, start, steps, speed, low, high)
            paths.append(path)
        return paths, classes

    @staticmethod
    def _place(
        rng: np.random.Generator, low: np.ndarray, high: np.ndarray, taken: list[np.ndarray], gap: float
    ) -> np.ndarray:
        """A start in [low, high] at least ``gap`` from the others where 50 tries find one."""
        best, best_gap = low, -1.0
        for _ in range(50):
            point = rng.uniform(low, high)
            nearest = min((float(np.linalg.norm(point - t)) for t in taken), default=math.inf)
            if nearest >= gap:
                return point
            if nearest > best_gap:
                best, best_gap = point, nearest
        return best

    def draw(self, label: int, rng: np.random.Generator, steps: int, active: np.ndarray | None = None) -> Scene:
        spec = self.spec
        active = np.ones(steps, dtype=bool) if active is None else active
        r = spec.actor_radius
        pan = spec.camera_motion * (steps - 1)
        side = spec.size + math.ceil(pan) + 1
        world = self._background(rng, side)
        heading = rng.uniform(0, 2 * math.pi)
        offsets = pan * np.stack([np.linspace(0, 1, steps)] * 2, axis=-1) * np.array(
            [abs(math.cos(heading)), abs(math.sin(heading))]
        )  # camera's top-left corner in the world, moving away from (0, 0)
        paths, classes = self._paths(rng, label, steps)
        order = rng.permutation(len(paths))  # front-to-back order: the actor may be hidden behind another
        bars = [  # (left edge at frame 0, pixels per frame)
            (rng.uniform(-30, spec.size), rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.0))
            for _ in range(spec.occlusion)
        ]
        frames = np.empty((steps, spec.size, spec.size, 3), dtype=np.uint8)
        boxes: list[list[int] | None] = []
        for t in range(steps):
            ox, oy = (round(v) for v in offsets[t])
            frame = world[oy : oy + spec.size, ox : ox + spec.size].copy()
            for index in order:
                if index == 0 and not active[t]:
                    continue
                cx, cy = paths[index][t]
                centre = (round(cx), round(cy))
                colour = self.colours[classes[index]] if spec.class_by == "colour" else self.neutral
                cv2.circle(frame, centre, r, tuple(int(v) for v in colour), -1, cv2.LINE_AA)
                if index == 0 and spec.marker == "ring":
                    cv2.circle(frame, centre, r + 5, _RING_COLOUR, 2, cv2.LINE_AA)
            for x, velocity in bars:
                left = round(x + velocity * t)
                cv2.rectangle(frame, (left, 0), (left + 20, spec.size - 1), (128, 128, 128), -1)
            frames[t] = frame
            if active[t]:
                cx, cy = paths[0][t]
                box = [math.floor(cx - r), math.floor(cy - r), math.ceil(cx + r), math.ceil(cy + r)]
                clipped = [max(0, box[0]), max(0, box[1]), min(spec.size, box[2]), min(spec.size, box[3])]
                boxes.append(clipped if clipped[0] < clipped[2] and clipped[1] < clipped[3] else None)
            else:
                boxes.append(None)
        return Scene(frames, boxes, label)


# ------------------------------------------------------------------------------------------- files


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 RGB frames (T, H, W, 3) as a Motion-JPEG ``.avi``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise ExtractionError(f"OpenCV cannot write '{path}' with the {FOURCC} codec")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _track(scene: Scene, size: int) -> dict[str, Any]:
    return {"width": size, "height": size, "frames": len(scene.boxes), "boxes": [[b] if b else [] for b in scene.boxes]}


def _split_membership(rng: np.random.Generator, count: int, test_fraction: float) -> list[str]:
    tests = max(1, round(count * test_fraction))
    tags = np.array(["train"] * (count - tests) + ["test"] * tests)
    return list(rng.permutation(tags))


def _render_hmdb51(spec: RenderSpec, out: Path, bar: tqdm) -> dict[str, Any]:
    renderer = SceneRenderer(spec)
    tracks: dict[str, Any] = {}
    names = spec.class_names
    split_rng = np.random.default_rng([spec.seed, 1 << 20])
    for label, name in enumerate(names):
        clip_names = [f"{name}_{k:03d}.avi" for k in range(spec.clips_per_class)]
        for k, clip_name in enumerate(clip_names):
            rng = np.random.default_rng([spec.seed, label * spec.clips_per_class + k])
            scene = renderer.draw(label, rng, spec.frames)
            write_video(out / "videos" / name / clip_name, scene.frames, spec.fps)
            tracks[f"{name}/{clip_name}"] = _track(scene, spec.size)
            bar.update(1)
        for split in ("1", "2", "3"):
            tags = _split_membership(split_rng, len(clip_names), spec.test_fraction)
            lines = [f"{clip} {_SPLIT_TAGS[tag]}" for clip, tag in zip(clip_names, tags, strict=True)]
            split_file = out / "splits" / f"{name}_test_split{split}.txt"
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text("\n".join(lines) + "\n")
    return tracks


def _segments(rng: np.random.Generator, spec: RenderSpec) -> list[tuple[int, int, int]]:
    """Non-overlapping (first frame, end frame, class) segments of one untrimmed video."""
    count = int(rng.integers(spec.segments_per_video[0], spec.segments_per_video[1] + 1))
    length = spec.untrimmed_frames
    slot = length // count
    segments = []
    for i in range(count):
        duration = int(rng.integers(max(2, slot // 2), slot + 1))
        start = i * slot + int(rng.integers(0, slot - duration + 1))
        segments.append((start, start + duration, int(rng.integers(spec.num_classes))))
    return segments


def _render_activitynet(spec: RenderSpec, out: Path, bar: tqdm) -> dict[str, Any]:
    renderer = SceneRenderer(spec)
    tracks: dict[str, Any] = {}
    database: dict[str, Any] = {}
    subsets = _split_membership(np.random.default_rng([spec.seed, 1 << 20]), spec.num_clips, spec.test_fraction)
    for number in range(spec.num_clips):
        rng = np.random.default_rng([spec.seed, number])
        video_id = f"render{number:05d}"
        segments = _segments(rng, spec)
        frames = np.empty((spec.untrimmed_frames, spec.size, spec.size, 3), dtype=np.uint8)
        boxes: list[list[int] | None] = [None] * spec.untrimmed_frames
        # the scene between segments: distractors only (the actor is absent)
        idle = renderer.draw(segments[0][2], rng, spec.untrimmed_frames, np.zeros(spec.untrimmed_frames, bool))
        frames[:] = idle.frames
        for start, end, label in segments:
            scene = renderer.draw(label, rng, end - start)
            frames[start:end] = scene.frames
            boxes[start:end] = scene.boxes
        write_video(out / "videos" / f"v_{video_id}.avi", frames, spec.fps)
        tracks[video_id] = _track(Scene(frames, boxes, -1), spec.size)
        database[video_id] = {
            "subset": "training" if subsets[number] == "train" else "validation",
            "duration": round(spec.untrimmed_frames / spec.fps, 3),
            "resolution": f"{spec.size}x{spec.size}",
            "url": "",
            "annotations": [
                {"label": spec.class_names[label], "segment": [round(s / spec.fps, 3), round(e / spec.fps, 3)]}
                for s, e, label in segments
            ],
        }
        bar.update(1)
    taxonomy = [
        {"nodeName": name, "nodeId": i, "parentName": "Root", "parentId": 0} for i, name in enumerate(spec.class_names)
    ]
    write_json_atomic(out / ANNOTATIONS_FILE, {"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database})
    return tracks


def render(spec: RenderSpec, out: str | Path, progress: bool = True) -> Path:
    """Draw the dataset of ``spec`` under ``out`` (created; an existing render is refused) and return ``out``."""
    spec = spec.checked()
    out = Path(out)
    if (out / RENDER_FILE).exists() or (out / "videos").exists():
        raise ExtractionError(f"'{out}' already holds a rendered dataset; choose another --out or delete it first.")
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=spec.num_clips, unit="video", desc=f"render -> {out.name}", disable=not progress) as bar:
        draw = _render_hmdb51 if spec.layout == "hmdb51" else _render_activitynet
        tracks = draw(spec, out, bar)
    write_json_atomic(out / ACTORS_FILE, {"format": ACTOR_BOXES_FORMAT, "videos": tracks})
    described = asdict(spec)
    described["class_names"] = spec.class_names
    (out / RENDER_FILE).write_text(json.dumps(described, indent=2) + "\n")
    return out


def extract_command(spec: RenderSpec, out: str | Path, store: str | Path) -> str:
    """The extraction command that turns the rendered dataset at ``out`` into a store at ``store``."""
    out = Path(out)
    if spec.layout == "hmdb51":
        return (
            f"python -m feature_extractors hmdb51 --videos {out / 'videos'} --splits {out / 'splits'} "
            f"--actors {out / ACTORS_FILE} --frames {spec.frames} --fps {spec.fps:g} --out {store}"
        )
    return (
        f"python -m feature_extractors activitynet --videos {out / 'videos'} --annotations {out / ANNOTATIONS_FILE} "
        f"--actors {out / ACTORS_FILE} --frames {spec.frames} --out {store}"
    )


__all__ = [
    "ACTORS_FILE",
    "VARIANTS",
    "RenderSpec",
    "Scene",
    "SceneRenderer",
    "class_colours",
    "extract_command",
    "render",
    "write_video",
]
