"""Images of an evaluation, drawn with OpenCV (no matplotlib): attention maps, confusion matrix, scatter plot.

An *attention map* is the sequence of frames an agent watched (the paper's Fig. 2 and 3): per step the
7 x 7 grid over the real video frame (or, without a readable video, a heat map of cell energy), the glimpse
the agent read (red), the path of its last glimpses (white), the ground-truth core where known (green), the
label and that step's prediction.
Frames are drawn by :class:`envs.render.FrameRenderer`, the env's own ``render_mode="rgb_array"`` drawing.
All images are RGB uint8 arrays of shape (H, W, 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from envs.render import CELL_PIXELS, HEADER_PIXELS, FrameRenderer

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
PATH_COLOUR = (255, 255, 255)  # RGB
GOOD, BAD = (64, 200, 64), (230, 64, 64)
#: Colours of scatter-plot groups (RGB), cycled.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@dataclass
class AttentionTrace:
    """Where one episode looked and what it predicted, step by step (each array (L,)).

    ``locations[t]`` is the cell of the glimpse the agent read at step t (in frame ``frames[t]``) and
    ``predictions[t]`` the class it predicted after reading it; ``prediction`` is the clip's prediction.
    """

    clip: int
    video_id: str
    label: int
    frames: np.ndarray
    locations: np.ndarray
    predictions: np.ndarray
    prediction: int
    correct: bool


def _centre(cell: int, grid: int) -> tuple[int, int]:
    r, c = divmod(int(cell), grid)
    return c * CELL_PIXELS + CELL_PIXELS // 2, HEADER_PIXELS + r * CELL_PIXELS + CELL_PIXELS // 2


def attention_panels(renderer: FrameRenderer, trace: AttentionTrace, trail: int = 6) -> list[np.ndarray]:
    """One image per step: the env's frame drawing plus the path of the last ``trail`` glimpses (older fainter)."""
    grid = renderer.rules.grid
    panels = []
    for t in range(len(trace.locations)):
        image = renderer.draw(trace.clip, int(trace.frames[t]), int(trace.locations[t]), trace.label,
                              int(trace.predictions[t]), trace.video_id)
        points = [_centre(c, grid) for c in trace.locations[max(0, t + 1 - trail): t + 1]]
        for i in range(1, len(points)):  # dark outline first, so the path shows on any background
            cv2.line(image, points[i - 1], points[i], BLACK, 4, cv2.LINE_AA)
        for i in range(1, len(points)):
            fade = 0.35 + 0.65 * i / (len(points) - 1)
            cv2.line(image, points[i - 1], points[i], tuple(int(v * fade) for v in PATH_COLOUR), 2, cv2.LINE_AA)
        for i, p in enumerate(points):
            cv2.circle(image, p, 4 if i == len(points) - 1 else 2, PATH_COLOUR, -1, cv2.LINE_AA)
        cv2.putText(image, f"step {t + 1}", (image.shape[1] - 62, HEADER_PIXELS - 7), FONT, 0.38, WHITE, 1,
                    cv2.LINE_AA)
        panels.append(image)
    return panels


def montage(panels: Sequence[np.ndarray], columns: int, title: str = "", gap: int = 4,
            title_colour: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Panels of one shape tiled row by row on a dark background, with an optional title bar."""
    if not panels:
        raise ValueError("montage() needs at least one panel")
    h, w = panels[0].shape[:2]
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    top = 30 if title else 0
    canvas = np.full((top + rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap, 3), 24, np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        y, x = top + gap + r * (h + gap), gap + c * (w + gap)
        canvas[y:y + h, x:x + w] = panel
    if title:
        cv2.putText(canvas, title, (gap + 2, 21), FONT, 0.55, title_colour, 1, cv2.LINE_AA)
    return canvas


def attention_map(renderer: FrameRenderer, trace: AttentionTrace, policy_name: str = "",
                  max_panels: int = 10, columns: int = 5) -> tuple[np.ndarray, list[np.ndarray]]:
    """(montage of up to ``max_panels`` evenly spaced steps, every step's panel) of one episode."""
    panels = attention_panels(renderer, trace)
    keep = np.unique(np.linspace(0, len(panels) - 1, min(max_panels, len(panels))).round().astype(int))
    columns = math.ceil(len(keep) / math.ceil(len(keep) / columns))  # balanced rows
    names = renderer.source.class_names
    verdict = "correct" if trace.correct else "wrong"
    title = (f"{policy_name + ': ' if policy_name else ''}{trace.video_id}  label {names[trace.label]}  "
             f"-> clip prediction {names[trace.prediction]} ({verdict})")
    image = montage([panels[i] for i in keep], columns, title, title_colour=GOOD if trace.correct else BAD)
    return image, panels


# ---------------------------------------------------------------------------------------------- files
def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"could not write the image '{path}'")
    return path


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float = 4.0) -> Path:
    """Write RGB frames as a looping GIF (OpenCV >= 4.11's animation writer, else Pillow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(1, round(1000 / fps))
    if hasattr(cv2, "imwriteanimation"):
        animation = cv2.Animation()
        animation.frames = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
        animation.durations = [duration] * len(frames)
        if cv2.imwriteanimation(str(path), animation):
            return path
    from PIL import Image  # torchvision's dependency

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


# ---------------------------------------------------------------------------------------------- charts
def _viridis(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB uint8 (..., 3)."""
    scaled = np.clip(np.nan_to_num(values) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled.reshape(-1, 1), cv2.COLORMAP_VIRIDIS).reshape(*values.shape, 3)[..., ::-1]


def confusion_image(cm: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix") -> np.ndarray:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a colour image."""
    c = cm.shape[0]
    cell = int(np.clip(560 // max(c, 1), 3, 48))
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    labelled = cell >= 12
    left = 8 + (min(14, max(len(n) for n in class_names)) * 7 if labelled else 0)
    top, side = 34, c * cell
    width = max(left + side + 16, 9 * len(title) + 16)
    image = np.full((top + side + 24, width, 3), 255, np.uint8)
    heat = cv2.resize(_viridis(norm), (side, side), interpolation=cv2.INTER_NEAREST)
    image[top:top + side, left:left + side] = heat
    cv2.putText(image, title, (8, 20), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(image, "predicted ->", (left, top + side + 17), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    if labelled:
        for i, name in enumerate(class_names):
            cv2.putText(image, name[:14], (4, top + i * cell + cell // 2 + 4), FONT, 0.33, BLACK, 1, cv2.LINE_AA)
            if cell >= 28:
                value = f"{norm[i, i]:.2f}"[1:] if norm[i, i] < 1 else "1.0"
                colour = BLACK if norm[i, i] > 0.6 else WHITE
                cv2.putText(image, value, (left + i * cell + 3, top + i * cell + cell // 2 + 4), FONT, 0.33, colour,
                            1, cv2.LINE_AA)
    return image


@dataclass
class Point:
    """One scatter-plot point: position, text next to it, colour group."""

    x: float
    y: float
    label: str
    group: str = ""


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10(max((hi - lo) / n, 1e-12)))
    for mult in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _format(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values between 10**lo and 10**hi: decades, plus 2x and 5x when the range is narrow."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    for mults in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = [m * 10.0**e for e in decades for m in mults if lo <= math.log10(m * 10.0**e) <= hi]
        if len(ticks) >= 3:
            return ticks
    return ticks


def scatter_plot(points: Sequence[Point], x_label: str, y_label: str, title: str = "", log_x: bool = True,
                 y_range: tuple[float, float] | None = None, size: tuple[int, int] = (900, 560)) -> np.ndarray:
    """A labelled scatter plot (log x axis by default) as an RGB image; colours by ``Point.group``.

    Coinciding points share one label block; blocks go where they overlap no other block or point.
    """
    width, height = size
    left, right, top, bottom = 80, 30, 44, 60
    image = np.full((height, width, 3), 255, np.uint8)
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y) and (p.x > 0 or not log_x)]

    def fx(v: float) -> float:
        return math.log10(v) if log_x else v

    if pts:
        xs = [fx(p.x) for p in pts]
        x_lo, x_hi = min(xs), max(xs)
        pad = max(0.15 * (x_hi - x_lo), 0.25 if log_x else 1e-9 + 0.05 * abs(x_hi))
        x_lo, x_hi = x_lo - pad, x_hi + pad
    else:
        x_lo, x_hi = 0.0, 1.0
    y_lo, y_hi = y_range or (0.0, max(1.0, 1.1 * max((p.y for p in pts), default=1.0)))
    margin = 0.05 * (y_hi - y_lo)  # points on the range's edges stay off the frame

    def to_px(x: float, y: float) -> tuple[int, int]:
        px = left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)
        py = height - bottom - (y - y_lo + margin) / (y_hi - y_lo + 2 * margin) * (height - top - bottom)
        return round(px), round(py)

    grey = (225, 225, 225)
    for y in _nice_ticks(y_lo, y_hi):
        _, py = to_px(x_lo, y)
        cv2.line(image, (left, py), (width - right, py), grey, 1)
        cv2.putText(image, f"{y:g}", (left - 40, py + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    for x in (_log_ticks(x_lo, x_hi) if log_x else _nice_ticks(x_lo, x_hi)):
        px, _ = to_px(fx(x), y_lo)
        cv2.line(image, (px, top), (px, height - bottom), grey, 1)
        cv2.putText(image, _format(x), (px - 14, height - bottom + 18), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), BLACK, 1)
    cv2.putText(image, x_label + (" (log scale)" if log_x else ""), (left, height - 18), FONT, 0.45, BLACK, 1,
                cv2.LINE_AA)
    cv2.putText(image, y_label, (8, top - 12), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    if title:
        cv2.putText(image, title, (left + 120, 22), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    groups = list(dict.fromkeys(p.group for p in pts))
    colours = [PALETTE[groups.index(p.group) % len(PALETTE)] for p in pts]
    centres = [to_px(fx(p.x), p.y) for p in pts]
    for colour, centre in zip(colours, centres, strict=True):
        cv2.circle(image, centre, 6, colour, -1, cv2.LINE_AA)
        cv2.circle(image, centre, 6, BLACK, 1, cv2.LINE_AA)
    # Points that (nearly) coincide share one label block, a line per point in its colour.
    clusters: list[list[int]] = []
    for i, (x, y) in enumerate(centres):
        home = next((c for c in clusters if abs(centres[c[0]][0] - x) <= 10 and abs(centres[c[0]][1] - y) <= 10), None)
        if home is None:
            clusters.append([i])
        else:
            home.append(i)
    taken: list[tuple[int, int, int, int]] = [(x - 7, y - 7, x + 7, y + 7) for x, y in centres]
    line_h = 14
    for cluster in sorted(clusters, key=lambda c: (centres[c[0]][1], centres[c[0]][0])):
        cx, cy = centres[cluster[0]]
        sizes = [cv2.getTextSize(pts[i].label, FONT, 0.4, 1)[0] for i in cluster]
        block_w, block_h = max(w for w, _ in sizes), line_h * len(cluster)
        own = {(x - 7, y - 7, x + 7, y + 7) for x, y in (centres[i] for i in cluster)}
        offsets = [(dx, dy) for dy in range(-block_h // 2 - 4, -block_h - 15 * line_h, -line_h // 2)
                   for dx in (10, -10 - block_w)]
        offsets = [(10, -block_h // 2), (-10 - block_w, -block_h // 2), (10, 6), (-10 - block_w, 6), *offsets]
        place = None
        for dx, dy in offsets:
            box = (cx + dx, cy + dy, cx + dx + block_w, cy + dy + block_h)
            inside = left < box[0] and box[2] < width - right and top < box[1] and box[3] < height - bottom
            clear = not any(b not in own and box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                            for b in taken)
            if inside and clear:
                place = box
                break
        if place is None:  # crowded: right of the point, kept in the frame
            x0 = min(cx + 10, width - right - block_w - 2)
            y0 = min(max(cy - block_h // 2, top + 2), height - bottom - block_h - 2)
            place = (x0, y0, x0 + block_w, y0 + block_h)
        taken.append(place)
        if not (place[1] <= cy <= place[3] and place[0] - 12 <= cx <= place[2] + 12):
            anchor = (place[0] if place[0] > cx else place[2], min(max(cy, place[1]), place[3]))
            cv2.line(image, (cx, cy), anchor, (120, 120, 120), 1, cv2.LINE_AA)
        for k, i in enumerate(cluster):
            cv2.putText(image, pts[i].label, (place[0], place[1] + (k + 1) * line_h - 3), FONT, 0.4, colours[i], 1,
                        cv2.LINE_AA)
    return image
