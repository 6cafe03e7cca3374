"""Videos to frames: sequential OpenCV decoding with fixed-rate or whole-video sampling.

Decoding never seeks and never trusts the container header's frame count: every frame is ``grab()``-ed
in order and only the kept ones are ``retrieve()``-d (converted to pixels). Timestamps come from the
decoder (``CAP_PROP_POS_MSEC`` of each grabbed frame), falling back to the frame counter.

Two sampling modes (``Sampling.fps``):

- fixed rate (``fps=F``): frame ``k`` is the decoded frame nearest to time ``k / F`` seconds, for
  ``k = 0 .. T-1``; decoding stops once the last one is found. A clip shorter than ``(T - 1) / F`` s
  yields fewer real frames.
- spread (``fps=None``): ``T`` frames spread evenly over the whole video, frame ``k`` being decoded
  frame ``floor((k + 0.5) * n / T)`` of the ``n`` frames the video really has. The header's count is only
  a guess for planning; if it proves wrong the video is decoded a second time with the real ``n``.

Missing frames (short clips) are padded by repeating the last real frame; ``valid_frames`` says how many
are real.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# OpenCV's FFmpeg backend reads this when it opens its first video (in this process and in every decoding
# worker, which imports this module): without it FFmpeg prints its own lines ("moov atom not found") next to
# ours, while every failure already lands in failures.jsonl with its reason. Set it yourself to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV's own warnings on such files

#: File name endings taken for videos when scanning folders.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".3gp")


class DecodeError(Exception):
    """A video that cannot be turned into frames; the message is the reason stored in ``failures.jsonl``."""


@dataclass(frozen=True)
class Sampling:
    """Which frames to take from a video and at what size.

    ``frames`` is T; ``fps`` the fixed sampling rate, or ``None`` to spread T frames over the whole
    video; ``size`` the side of the square the frames are resized to (224 for GoogLeNet, as in the paper).
    """

    frames: int = 30
    fps: float | None = 10.0
    size: int = 224

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number or None, got {self.fps}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")

    @property
    def mode(self) -> str:
        return "spread" if self.fps is None else "fixed-rate"


@dataclass
class DecodedClip:
    """The sampled frames of one video.

    ``frames``: uint8 RGB ``(T, size, size, 3)``; ``timestamps``: seconds of each of the T frames;
    ``frame_numbers``: position of each frame in decoding order (0-based); ``valid_frames``: how many of
    the T are real (the rest repeat the last real one, timestamp and number included).
    """

    frames: np.ndarray
    timestamps: list[float]
    frame_numbers: list[int]
    valid_frames: int


def _open(path: Path) -> tuple[cv2.VideoCapture, float]:
    """Open ``path`` for single-threaded decoding; returns the capture and the header's fps (0 if unusable)."""
    if not path.exists():
        raise DecodeError(f"file not found: {path}")
    if path.is_dir():
        raise DecodeError(f"is a folder, not a video file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError("file is empty (0 bytes)")
    # One decoding thread: parallelism comes from the worker processes, one video each.
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise DecodeError("OpenCV cannot open the file (damaged, not a video, or a codec this build lacks)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and 0 < fps < 1000):
        fps = 0.0
    return cap, fps


def _grab_all(cap: cv2.VideoCapture, header_fps: float) -> Iterator[tuple[int, float, float]]:
    """Grab every frame in order; yields (frame number, timestamp in s, interval to the previous frame)."""
    number, prev = 0, None
    default_interval = 1.0 / header_fps if header_fps else 1.0 / 30.0
    while cap.grab():
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        t = msec / 1000.0 if math.isfinite(msec) and msec >= 0 else -1.0
        if prev is None:
            t = max(t, 0.0)
        elif t <= prev:
            # no usable timestamp from the container: count frames instead
            t = prev + default_interval
        interval = default_interval if prev is None else t - prev
        yield number, t, interval
        prev = t
        number += 1


def resize_frame(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W, C) stretched to ``size`` x ``size``: the one resize rule of decoding and of the glances."""
    h, w = image.shape[:2]
    # area averaging where bilinear would alias (shrinking 2x or more); bilinear, 4x cheaper, otherwise
    interp = cv2.INTER_AREA if max(w, h) >= 2 * size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def _retrieve(cap: cv2.VideoCapture, number: int, size: int) -> np.ndarray:
    ok, bgr = cap.retrieve()
    if not ok or bgr is None or bgr.size == 0:
        raise DecodeError(f"frame {number} was grabbed but could not be decoded")
    return cv2.cvtColor(resize_frame(bgr, size), cv2.COLOR_BGR2RGB)


def spread_indices(num_frames: int, frames: int) -> list[int]:
    """Frame numbers of ``frames`` frames spread over a video of ``num_frames`` (all of them if fewer)."""
    if num_frames <= frames:
        return list(range(num_frames))
    return [int((k + 0.5) * num_frames / frames) for k in range(frames)]


def _iter_rate(path: Path, sampling: Sampling) -> Iterator[tuple[np.ndarray, float, int]]:
    """(image, time, frame number) of each fixed-rate sample in order, as soon as it is decoded."""
    assert sampling.fps is not None
    cap, header_fps = _open(path)
    targets = [k / sampling.fps for k in range(sampling.frames)]
    k = 0
    try:
        for number, t, interval in _grab_all(cap, header_fps):
            # the frame nearest to a target time is the first whose time is past target - half a frame
            half = 0.5 * (1.0 / header_fps if header_fps else interval)
            if t < targets[k] - half:
                continue
            image = _retrieve(cap, number, sampling.size)
            while k < len(targets) and t >= targets[k] - half:
                yield image, t, number
                k += 1
            if k == len(targets):
                break
    finally:
        cap.release()


def _sample_rate(path: Path, sampling: Sampling) -> tuple[list[np.ndarray], list[float], list[int]]:
    images: list[np.ndarray] = []
    times: list[float] = []
    numbers: list[int] = []
    for image, t, number in _iter_rate(path, sampling):
        images.append(image)
        times.append(t)
        numbers.append(number)
    return images, times, numbers


def _collect(path: Path, wanted: list[int], size: int) -> tuple[dict[int, tuple[np.ndarray, float]], int]:
    """Decode the whole video, keeping the frames numbered in ``wanted``; also returns the frame count."""
    cap, header_fps = _open(path)
    want = set(wanted)
    kept: dict[int, tuple[np.ndarray, float]] = {}
    count = 0
    try:
        for number, t, _ in _grab_all(cap, header_fps):
            if number in want:
                kept[number] = (_retrieve(cap, number, size), t)
            count = number + 1
    finally:
        cap.release()
    return kept, count


def video_shape(path: str | Path) -> tuple[int, int, int]:
    """(frames, width, height) of a video: every frame grabbed and counted (the header's count is not trusted)."""
    cap, header_fps = _open(Path(path))
    try:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = 0
        for number, _, _ in _grab_all(cap, header_fps):
            count = number + 1
        return count, width, height
    finally:
        cap.release()


def _count_frames(path: Path) -> int:
    return video_shape(path)[0]


def header_frame_count(path: Path) -> int:
    """The container's claimed frame count (0 when absent); a guess for planning, never trusted."""
    cap, _ = _open(path)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    return int(count) if math.isfinite(count) and count > 0 else 0


def _sample_spread(path: Path, sampling: Sampling) -> tuple[list[np.ndarray], list[float], list[int]]:
    count = header_frame_count(path) or _count_frames(path)
    plan = spread_indices(count, sampling.frames)
    kept, real_count = _collect(path, plan, sampling.size)
    if real_count != count:
        # the header was wrong: plan again on the real count
        plan = spread_indices(real_count, sampling.frames)
        kept, _ = _collect(path, plan, sampling.size)
    plan = [n for n in plan if n in kept]
    return [kept[n][0] for n in plan], [kept[n][1] for n in plan], plan


def decode_clip(path: str | Path, sampling: Sampling) -> DecodedClip:
    """Decode and sample one video; raises ``DecodeError`` with the reason if it yields no frames."""
    path = Path(path)
    sample = _sample_rate if sampling.fps is not None else _sample_spread
    images, times, numbers = sample(path, sampling)
    if not images:
        raise DecodeError("no frames could be decoded (the file opens but yields no video frames)")
    valid = len(images)
    pad = sampling.frames - valid
    frames = np.stack(images + [images[-1]] * pad)
    return DecodedClip(
        frames=frames,
        timestamps=times + [times[-1]] * pad,
        frame_numbers=numbers + [numbers[-1]] * pad,
        valid_frames=valid,
    )


def stream_clip(path: str | Path, sampling: Sampling) -> Iterator[np.ndarray]:
    """The T sampled frames of a video in order (uint8 RGB ``(size, size, 3)``), the same as
    :func:`decode_clip`'s, padding included: what a live system would feed its network frame by frame.

    Fixed-rate sampling yields each frame as soon as it is decoded. Spread sampling needs the video's frame
    count before its first frame, so it decodes the whole video first. Raises ``DecodeError`` like
    ``decode_clip``.
    """
    path = Path(path)
    if sampling.fps is None:
        yield from decode_clip(path, sampling).frames
        return
    last, count = None, 0
    for last, _, _ in _iter_rate(path, sampling):
        count += 1
        yield last
    if last is None:
        raise DecodeError("no frames could be decoded (the file opens but yields no video frames)")
    for _ in range(sampling.frames - count):  # a short clip: repeat its last frame, as decode_clip pads
        yield last
