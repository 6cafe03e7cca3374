"""Images of an evaluation: attention maps (OpenCV, over the env's own frame drawing), and the confusion
matrix and scatter plots (matplotlib, rendered off-screen).

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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

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
def figure_image(figure: Figure) -> np.ndarray:
    """A matplotlib figure rendered off-screen (Agg, no pyplot state) as an RGB uint8 image."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def confusion_image(cm: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix") -> np.ndarray:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as an RGB image."""
    c = cm.shape[0]
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    side = float(np.clip(0.22 * c + 2.5, 4.0, 12.0))
    figure = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    shown = ax.imshow(norm, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(shown, ax=ax, shrink=0.8, label="share of the row")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if c <= 60:  # beyond that the names would overlap: indices only
        names = [n[:14] for n in class_names]
        size = 8 if c <= 20 else 5
        ax.set_xticks(range(c), names, rotation=90, fontsize=size)
        ax.set_yticks(range(c), names, fontsize=size)
    if c <= 12:
        for i in range(c):
            ax.text(i, i, f"{norm[i, i]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if norm[i, i] > 0.6 else "white")
    return figure_image(figure)


@dataclass
class Point:
    """One scatter-plot point: position, text next to it, colour group."""

    x: float
    y: float
    label: str
    group: str = ""


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats (lower or equal x and higher or equal y, one of them strictly), by x:
    the best accuracy each cost buys."""
    front: list[Point] = []
    for p in sorted(points, key=lambda q: (q.x, -q.y)):
        if not front or p.y > front[-1].y:
            front.append(p)
    return front


def scatter_plot(points: Sequence[Point], x_label: str, y_label: str, title: str = "", log_x: bool = True,
                 y_range: tuple[float, float] | None = None, size: tuple[int, int] = (900, 560),
                 front: bool = False) -> np.ndarray:
    """A labelled scatter plot (log x axis by default) as an RGB image of ``size`` (width, height) pixels;
    colours by ``Point.group`` (named in the legend when there are several); points that coincide share one
    label block. ``front`` joins the Pareto front (:func:`pareto_front`: highest y for the x) with a dashed line
    and rings its points."""
    width, height = size
    figure = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y) and (p.x > 0 or not log_x)]
    groups = list(dict.fromkeys(p.group for p in pts))
    colours = [PALETTE[groups.index(p.group) % len(PALETTE)] for p in pts]
    named: set[str] = set()  # each named group once in the legend
    for p, colour in zip(pts, colours, strict=True):
        label = p.group if p.group and p.group not in named else None
        named.add(p.group)
        ax.scatter([p.x], [p.y], s=48, color=np.array(colour) / 255, edgecolors="black", linewidths=0.8, zorder=3,
                   label=label)
    if front and pts:
        best = pareto_front(pts)
        ax.plot([p.x for p in best], [p.y for p in best], "--", color="#555555", linewidth=1.0, zorder=2,
                label="Pareto front")
        ax.scatter([p.x for p in best], [p.y for p in best], s=160, facecolors="none", edgecolors="#555555",
                   linewidths=1.2, zorder=2)
    if (front and pts) or len(named - {""}) > 1:
        ax.legend(loc="best", fontsize=8)
    def fx(v: float) -> float:
        return math.log10(v) if log_x else v

    def spread(values: list[float]) -> float:
        return (max(values) - min(values)) or 1.0 if values else 1.0

    x_span = spread([fx(p.x) for p in pts])
    y_span = y_range[1] - y_range[0] if y_range is not None else spread([p.y for p in pts])
    clusters: list[list[int]] = []  # points within ~3 % of the axes share one label block (no overlaps)
    for i, p in enumerate(pts):
        near = (c for c in clusters if abs(pts[c[0]].y - p.y) <= 0.03 * y_span
                and abs(fx(pts[c[0]].x) - fx(p.x)) <= 0.03 * x_span)
        home = next(near, None)
        if home is None:
            clusters.append([i])
        else:
            home.append(i)
    for cluster in clusters:
        first = pts[cluster[0]]
        for k, i in enumerate(cluster):
            ax.annotate(pts[i].label, (first.x, first.y), xytext=(8, 4 - 11 * k), textcoords="offset points",
                        fontsize=8, color=np.array(colours[i]) / 255, va="center")
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
    if y_range is not None:
        margin = 0.05 * (y_range[1] - y_range[0])  # points on the range's edges stay off the frame
        ax.set_ylim(y_range[0] - margin, y_range[1] + margin)
    ax.margins(x=0.25)  # room for the labels right of the points
    ax.grid(True, color="#e1e1e1", zorder=0)
    ax.set_xlabel(x_label + (" (log scale)" if log_x else ""))
    ax.set_ylabel(y_label)
    if title:
        ax.set_title(title, fontsize=10)
    return figure_image(figure)
