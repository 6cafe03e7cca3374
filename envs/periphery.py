"""The peripheral view: a short, label-free summary vector of every cell (defined here, once).

A glimpse-mode agent reads one cell of D values per step. To choose *where* to look it also gets the
``periphery``: for every one of the K x K cells of the current frame, ``k`` numbers, the means of ``k``
contiguous groups of channels (group ``j`` averages channels ``[j*D//k, (j+1)*D//k)``). It is a fixed
linear map: nothing is fitted, so no label (and no core annotation) can leak into it, and it is the same
for the synthetic benchmark, for stores written at extraction and for stores upgraded later
(``python -m feature_extractors add-periphery --store DIR``).

Why channel-group means (measured with ``bench/bench_synthetic_calibration.py``, see the env manual):
they keep the per-channel-group energy that marks a salient cell, are non-negative like the features,
cost one pass over the cell, and need no training data; the periphery alone cannot name the class
(nearest class mean on its clip average stays near chance) but a linear saliency score on it finds the
core.

Budget: a glimpse-mode step reads ``D + K*K*k`` values against ``K*K*D`` for the whole cube. The
default ``k`` is the largest that keeps this at or under a tenth of the cube, capped at 64
(``default_periphery_dim``): 64 at D = 1024 (4,160 of 50,176 values, 8.3 %). Below D = 13 not even
one value per cell fits in a tenth; the default is then 1 and the budget is exceeded (documented in the
manual). numpy only.
"""

from __future__ import annotations

import numpy as np

#: The transform's name and version, recorded in a store's ``meta.json`` (a new transform bumps it).
PERIPHERY_TRANSFORM = "channel_group_mean/v1"
#: The motion periphery's (``motion``), likewise.
MOTION_TRANSFORM = "channel_group_mean_abs_frame_difference/v1"
#: Largest default ``k``: more groups did not locate the core better in the calibration bench.
MAX_DEFAULT_DIM = 64
#: Share of the cube's values a glimpse-mode step may read (glimpse + periphery).
READ_BUDGET = 0.1


def default_periphery_dim(feature_dim: int, num_cells: int = 49) -> int:
    """Default ``k``: the most groups (<= 64) with ``D + cells * k <= cells * D / 10``; at least 1."""
    fits = int((READ_BUDGET * num_cells * feature_dim - feature_dim) // num_cells)
    return max(1, min(MAX_DEFAULT_DIM, fits, feature_dim))


def check_periphery_dim(dim: object, feature_dim: int) -> int:
    """``dim`` as an int if it is a valid k (0 = none, up to D); ``ValueError`` with the fix otherwise."""
    if isinstance(dim, int | np.integer) and not isinstance(dim, bool) and 0 <= dim <= feature_dim:
        return int(dim)
    raise ValueError(
        f"periphery_dim must be None (the default size), 0 (no periphery) or an integer in "
        f"[1, feature_dim={feature_dim}], got {dim!r}"
    )


def group_bounds(feature_dim: int, dim: int) -> np.ndarray:
    """First channel of each of the ``dim`` groups (``dim`` <= D): (dim,) int64."""
    if not 1 <= dim <= feature_dim:
        raise ValueError(f"periphery_dim must lie in [1, feature_dim={feature_dim}], got {dim}")
    return (np.arange(dim, dtype=np.int64) * feature_dim) // dim


def motion(current: np.ndarray, previous: np.ndarray, dim: int) -> np.ndarray:
    """The motion periphery of cells (..., D) against the same cells one frame earlier: the ``dim``
    channel-group means of ``|current - previous|``, float32 (..., dim).

    What changed since the last frame is the cue that finds an actor marked only by moving. The absolute
    value comes before the group mean: measured on the rendered benchmark's moving variant (random-weight
    GoogLeNet), the cell with the largest change lies on the actor in 92 % of frames this way and in 70 %
    when the change of the group means is taken instead (a group's channels rise and fall together and
    cancel).
    """
    current = np.asarray(current, dtype=np.float32)
    return periphery(np.abs(current - np.asarray(previous, dtype=np.float32)), dim)


def clip_motion(features: np.ndarray, dim: int) -> np.ndarray:
    """The motion periphery of every frame of a clip (T, ..., D): float32 (T, ..., dim), zero at frame 0."""
    features = np.asarray(features)
    out = np.zeros((*features.shape[:-1], dim), dtype=np.float32)
    if len(features) > 1:
        out[1:] = motion(features[1:], features[:-1], dim)
    return out


def periphery(features: np.ndarray, dim: int) -> np.ndarray:
    """Periphery of cells ``features`` (..., D): the ``dim`` channel-group means, float32 (..., dim)."""
    features = np.asarray(features)
    d = features.shape[-1]
    starts = group_bounds(d, dim)
    sizes = np.diff(np.append(starts, d)).astype(np.float32)
    sums = np.add.reduceat(features.astype(np.float32, copy=False), starts, axis=-1)
    return sums / sizes


#: The pixel glance of crop-cell stores (their ``periphery.npy``, k = 1): per-cell motion energy.
MOTION_ENERGY_TRANSFORM = "grey_abs_frame_difference_cell_mean/v1"
#: The low-resolution glance of crop-cell stores (``--glance lowres``): the channel-group means
#: (``periphery``) of the backbone's map of the downscaled frame pooled to the grid.
LOWRES_GLANCE_TRANSFORM = "lowres_backbone_group_mean/v1"
#: Peripheries computed from pixels at extraction (not from the features): ``add-periphery`` keeps them.
GLANCE_TRANSFORMS = (MOTION_ENERGY_TRANSFORM, LOWRES_GLANCE_TRANSFORM)
#: Operations per pixel of ``motion_energy``: grey (3 multiplies, 2 adds), difference, absolute value, sum.
MOTION_ENERGY_OPS_PER_PIXEL = 8
#: ITU-R BT.601 luma weights of R, G, B (what OpenCV's RGB -> grey uses).
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def motion_energy(frames: np.ndarray, grid: int = 7) -> np.ndarray:
    """Per-cell motion energy of a clip's uint8 RGB frames (T, H, W, 3): float32 (T, grid, grid, 1).

    Cell (i, j) of frame t is the mean of ``|grey_t - grey_{t-1}|`` (grey in [0, 1]) over that cell's
    pixels; frame 0 has no previous frame and gets 0. A cheap pixel-level glance (about 8 operations a
    pixel, 0.4 M for a 224 x 224 frame) that lights up the cells where something moves, without running
    the network on them. H and W must be multiples of ``grid``.
    """
    frames = np.asarray(frames)
    t, h, w = frames.shape[:3]
    if h % grid or w % grid:
        raise ValueError(f"frames of {h} x {w} pixels do not split into a {grid} x {grid} grid; resize them first")
    out = np.zeros((t, grid, grid, 1), dtype=np.float32)
    if t > 1:
        grey = frames.astype(np.float32) @ (_GREY / 255.0)
        diff = np.abs(grey[1:] - grey[:-1])
        out[1:, :, :, 0] = diff.reshape(t - 1, grid, h // grid, grid, w // grid).mean(axis=(2, 4))
    return out
