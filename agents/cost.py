"""What one evaluated clip costs (issue 10's cost account): feature values and store bytes read, and the CNN.

Every policy here works on stored GoogLeNet cubes, so every one of them has paid the whole CNN for every
frame it saw: an ``inception5b`` cell's receptive field covers most of the 224 x 224 frame, so one cell
cannot be computed for a 49th of the network (FACTS.md: 56-86 % of a frame's FLOPs for a single cell).
What hard attention saves is the attention model's work (counted separately, ``measure_cost``) and the
feature values it reads: per frame seen, the glimpsed cells (D values each), plus the periphery
(K*K x k values) where the policy reads it, or the whole cube (K*K x D) for policies that read every cell.
Bytes are those values as the store holds them (float16).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.store import FEATURE_DTYPE


def reads_periphery(policy: Any, env: Any) -> bool:
    """Whether the policy reads the ``periphery`` observation (where the env serves one)."""
    if "periphery" not in env.single_observation_space.spaces:
        return False
    if hasattr(policy, "reads_periphery"):
        return bool(policy.reads_periphery)
    cfg = getattr(getattr(policy, "network", None), "config", None)
    if cfg is not None:
        return bool(getattr(cfg, "periphery_dim", 0))
    return True  # other policies (Stable-Baselines3's) read every observation entry they are given


def values_read(locations: np.ndarray, rules: Any, cube: bool, periphery: bool) -> np.ndarray:
    """Feature values each clip's policy read, (N,), from the cells it looked at, ``locations`` (N, L).

    A cell read twice in a frame is counted once; the periphery and the cube once per frame seen.
    """
    steps = locations.shape[1]
    frames = np.asarray(rules.frame_of(np.arange(steps)))
    n_frames = len(np.unique(frames))
    if cube:
        cells = np.full(len(locations), n_frames * rules.num_cells, dtype=np.float64)
    else:
        pairs = frames[None, :] * rules.num_cells + locations
        cells = np.array([len(np.unique(row)) for row in pairs], dtype=np.float64)
    extra = n_frames * rules.num_cells * rules.periphery_dim if periphery else 0
    return cells * rules.feature_dim + extra


def cost_metrics(locations: np.ndarray, rules: Any, cube: bool, periphery: bool, cnn_flops_per_frame: float
                 ) -> dict[str, float]:
    """The per-clip cost entries of an evaluation's metrics (see the module docstring)."""
    values = values_read(locations, rules, cube, periphery)
    n_frames = len(np.unique(np.asarray(rules.frame_of(np.arange(locations.shape[1])))))
    cube_values = n_frames * rules.num_cells * rules.feature_dim
    return {
        "feature_values_read_per_clip": float(values.mean()),
        "share_of_cube_read": float(values.mean() / cube_values),
        "store_bytes_read_per_clip": float(values.mean() * np.dtype(FEATURE_DTYPE).itemsize),
        "frames_per_clip": float(n_frames),
        "cnn_flops_per_frame": float(cnn_flops_per_frame),
        "cnn_flops_per_clip": float(n_frames * cnn_flops_per_frame),
    }
