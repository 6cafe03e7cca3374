"""``render_mode="rgb_array"`` images: the 7 x 7 grid, the glimpse, the core, label and prediction."""

from __future__ import annotations

import cv2
import numpy as np

from envs.dynamics import EpisodeRules
from envs.sources import FeatureSource

CELL_PIXELS = 32
HEADER_PIXELS = 40
GLIMPSE_COLOUR = (255, 64, 64)  # RGB
CORE_COLOUR = (64, 255, 64)


class FrameRenderer:
    """Draws the current frame of one episode slot as an RGB uint8 image of a fixed shape.

    Shape: (HEADER_PIXELS + K * CELL_PIXELS, K * CELL_PIXELS, 3). Under the grid: the real video frame
    when the store names a readable source video, else a heat map of each cell's energy (mean value).
    """

    def __init__(self, source: FeatureSource, rules: EpisodeRules) -> None:
        self.source, self.rules = source, rules
        self.size = rules.grid * CELL_PIXELS
        self._video_clip: int | None = None
        self._video_frames: list[np.ndarray] | None = None

    def draw(self, clip: int, frame: int, location: int, label: int, prediction: int, video_id: str) -> np.ndarray:
        """Image of ``frame`` of ``clip`` with the glimpse at ``location`` (``prediction`` -1: none yet)."""
        canvas = np.zeros((HEADER_PIXELS + self.size, self.size, 3), dtype=np.uint8)
        canvas[HEADER_PIXELS:] = self._background(clip, frame)
        grid = self.rules.grid
        view = canvas[HEADER_PIXELS:]
        for k in range(1, grid):  # grid lines
            view[k * CELL_PIXELS, :] = 200
            view[:, k * CELL_PIXELS] = 200
        if self.source.has_core:
            core = self.source.core_mask(np.array([clip]), np.array([frame]))[0]
            for cell in np.nonzero(core)[0]:
                self._box(view, int(cell), CORE_COLOUR, 2)
        self._box(view, location, GLIMPSE_COLOUR, 3)
        names = self.source.class_names
        text1 = f"{video_id}  frame {frame + 1}/{self.rules.frames}"
        text2 = f"label: {names[label]}   pred: {names[prediction] if prediction >= 0 else '-'}"
        white = (255, 255, 255)
        colour = white if prediction < 0 else (CORE_COLOUR if prediction == label else GLIMPSE_COLOUR)
        cv2.putText(canvas, text1[:40], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.38, white, 1, cv2.LINE_AA)
        cv2.putText(canvas, text2[:40], (4, 33), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1, cv2.LINE_AA)
        return canvas

    def _box(self, view: np.ndarray, cell: int, colour: tuple[int, int, int], thickness: int) -> None:
        r, c = divmod(cell, self.rules.grid)
        top_left = (c * CELL_PIXELS + 1, r * CELL_PIXELS + 1)
        bottom_right = ((c + 1) * CELL_PIXELS - 2, (r + 1) * CELL_PIXELS - 2)
        cv2.rectangle(view, top_left, bottom_right, colour, thickness)

    def _background(self, clip: int, frame: int) -> np.ndarray:
        video = self._video(clip)
        if video is not None and video:
            return video[min(frame, len(video) - 1)]
        energy = self.source.cube(np.array([clip]), np.array([frame]))[0].astype(np.float32).mean(-1)
        span = float(energy.max() - energy.min())
        scaled = ((energy - energy.min()) / span * 255 if span > 0 else np.zeros_like(energy)).astype(np.uint8)
        heat = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)[..., ::-1]  # BGR -> RGB
        return cv2.resize(heat, (self.size, self.size), interpolation=cv2.INTER_NEAREST)

    def _video(self, clip: int) -> list[np.ndarray] | None:
        """The clip's sampled frames from its source video (decoded once per clip), if readable."""
        if clip == self._video_clip:
            return self._video_frames
        self._video_clip, self._video_frames = clip, None
        found = self.source.source_video(clip)
        if found is None:
            return None
        path, timestamps = found
        capture = cv2.VideoCapture(path)
        frames: list[np.ndarray] = []
        wanted = iter(timestamps)
        target = next(wanted, None)
        while target is not None and capture.grab():
            ms = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            while target is not None and ms + 1e-6 >= target:
                ok, image = capture.retrieve()
                if not ok:
                    break
                frames.append(cv2.resize(image, (self.size, self.size))[..., ::-1].copy())
                target = next(wanted, None)
        capture.release()
        self._video_frames = frames or None
        return self._video_frames
