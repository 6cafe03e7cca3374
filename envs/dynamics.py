"""The rules of an episode, once, for a batch of episodes.

``GlimpseEnv`` runs a batch of one and ``GlimpseVectorEnv`` a batch of ``num_envs``; both call only
this module to reset, step, observe and describe episodes, so their dynamics cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.reward import REWARD_MODES, step_reward
from envs.sources import FeatureSource

OBSERVATION_MODES = ("cube", "glimpse")
OBSERVATION_DTYPES = ("float32", "float16")
INITIAL_LOCATIONS = ("center", "random")
#: Largest feature value: stores hold float16, so nothing larger can occur.
FEATURE_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class EpisodeRules:
    """How an episode runs: glimpses, budget, reward and what the agent observes."""

    frames: int
    grid: int
    feature_dim: int
    num_classes: int
    observation_mode: str = "cube"
    observation_dtype: str = "float32"
    glimpses_per_frame: int = 1
    glimpse_budget: int | None = None
    reward_mode: str = "paper"
    eta: float = 0.5
    reward_positive: float = 1.0
    reward_negative: float = -1.0
    initial_location: str = "center"

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")

        choice("observation_mode", OBSERVATION_MODES)
        choice("observation_dtype", OBSERVATION_DTYPES)
        choice("reward_mode", REWARD_MODES)
        choice("initial_location", INITIAL_LOCATIONS)
        if not (isinstance(self.glimpses_per_frame, int | np.integer) and self.glimpses_per_frame >= 1):
            raise ValueError(f"glimpses_per_frame must be an integer >= 1, got {self.glimpses_per_frame!r}")
        if self.glimpse_budget is not None and not (
            isinstance(self.glimpse_budget, int | np.integer) and self.glimpse_budget >= 1
        ):
            raise ValueError(f"glimpse_budget must be None (unlimited) or an integer >= 1, got {self.glimpse_budget!r}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta!r}")

    @property
    def num_cells(self) -> int:
        return self.grid * self.grid

    @property
    def episode_length(self) -> int:
        """Steps (= glimpses = predictions) per episode: T * m, or the glimpse budget if smaller."""
        full = self.frames * self.glimpses_per_frame
        return full if self.glimpse_budget is None else min(full, self.glimpse_budget)

    @property
    def center_cell(self) -> int:
        return (self.grid // 2) * self.grid + self.grid // 2

    def observation_space(self) -> spaces.Dict:
        dtype = np.dtype(self.observation_dtype)
        entries: dict[str, spaces.Space[Any]] = {
            "glimpse": spaces.Box(0.0, FEATURE_MAX, (self.feature_dim,), dtype),
            "location": spaces.Discrete(self.num_cells),
            "progress": spaces.Box(0.0, 1.0, (2,), np.float32),
        }
        if self.observation_mode == "cube":
            entries["cube"] = spaces.Box(0.0, FEATURE_MAX, (self.grid, self.grid, self.feature_dim), dtype)
        return spaces.Dict(entries)

    def action_space(self) -> spaces.MultiDiscrete:
        return spaces.MultiDiscrete([self.num_cells, self.num_classes])


class EpisodeBatch:
    """State of ``size`` episodes over one feature source, advanced in lockstep-free numpy batches."""

    def __init__(self, source: FeatureSource, rules: EpisodeRules, size: int) -> None:
        self.source, self.rules, self.size = source, rules, size
        self.clip = np.zeros(size, dtype=np.int64)
        self.label = np.zeros(size, dtype=np.int64)
        self.video_id = np.full(size, "", dtype=object)
        self.steps = np.zeros(size, dtype=np.int64)
        self.location = np.full(size, rules.center_cell, dtype=np.int64)
        self.n_true_pos = np.zeros(size, dtype=np.int64)
        self.n_false_pos = np.zeros(size, dtype=np.int64)
        self.prediction = np.full(size, -1, dtype=np.int64)
        self.done = np.zeros(size, dtype=bool)

    # -- transitions ----------------------------------------------------------------------------
    def start(self, idx: np.ndarray, clips: np.ndarray, locations: np.ndarray) -> None:
        """Begin new episodes in slots ``idx`` on ``clips``, first glimpse at ``locations``."""
        self.clip[idx] = clips
        self.label[idx] = self.source.labels(clips)
        self.video_id[idx] = self.source.video_ids(clips)
        self.steps[idx] = 0
        self.location[idx] = locations
        self.n_true_pos[idx] = 0
        self.n_false_pos[idx] = 0
        self.prediction[idx] = -1
        self.done[idx] = False

    def advance(self, idx: np.ndarray, cells: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score the predictions of slots ``idx``, move their glimpses to ``cells``.

        Returns (reward float32, terminated bool) for those slots.
        """
        correct = self.source.is_correct(self.clip[idx], predictions)
        self.n_true_pos[idx] += correct
        self.n_false_pos[idx] += ~correct
        self.steps[idx] += 1
        self.location[idx] = cells
        self.prediction[idx] = predictions
        last = self.steps[idx] >= self.rules.episode_length
        self.done[idx] = last
        r = self.rules
        reward = step_reward(
            r.reward_mode, correct, self.n_true_pos[idx], self.n_false_pos[idx], last,
            r.eta, r.reward_positive, r.reward_negative,
        )
        return reward, last

    # -- views ----------------------------------------------------------------------------------
    def frame(self, idx: np.ndarray) -> np.ndarray:
        """Frame of the current glimpse (the last frame once the clip is used up)."""
        return np.minimum(self.steps[idx] // self.rules.glimpses_per_frame, self.rules.frames - 1)

    def observe(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Batched observation and info entries of slots ``idx``.

        ``is_success`` (last prediction right) is only meaningful where the episode is done.
        """
        r = self.rules
        clips, frames, location = self.clip[idx], self.frame(idx), self.location[idx]
        progress = np.stack(
            [np.minimum(self.steps[idx] // r.glimpses_per_frame, r.frames) / r.frames,
             (self.steps[idx] % r.glimpses_per_frame) / r.glimpses_per_frame],
            axis=-1,
        ).astype(np.float32)
        glimpse, on_core = self.source.glimpse_on_core(clips, frames, location)
        obs = {"glimpse": glimpse, "location": location, "progress": progress}
        if r.observation_mode == "cube":
            obs["cube"] = self.source.cube(clips, frames)
        info = {
            "label": self.label[idx],
            "video_id": self.video_id[idx],
            "frame": frames,
            "location": location.copy(),
            "on_core": np.full(len(idx), None, dtype=object) if on_core is None else on_core,
            "n_true_pos": self.n_true_pos[idx],
            "n_false_pos": self.n_false_pos[idx],
            "is_success": self.source.is_correct(clips, self.prediction[idx]) & self.done[idx],
        }
        return obs, info

    def next_core_mask(self, idx: np.ndarray) -> np.ndarray:
        """Core cells (bool, (B, K*K)) of the frame the next glimpse (the next action's cell) lands in."""
        if not self.source.has_core:
            raise ValueError(f"{self.source.description} has no ground-truth core annotation")
        r = self.rules
        frames = np.minimum((self.steps[idx] + 1) // r.glimpses_per_frame, r.frames - 1)
        return self.source.core_mask(self.clip[idx], frames)

    def check_actions(self, actions: np.ndarray, space: spaces.MultiDiscrete) -> np.ndarray:
        """Actions as int64 (B, 2); raise ``ValueError`` with a fix when they are outside the space."""
        arr = np.asarray(actions)
        if arr.shape[-1:] != (2,) or not (np.issubdtype(arr.dtype, np.integer) or _integral(arr)):
            raise ValueError(
                f"invalid action {actions!r}: expected integers [cell, class] of shape (2,) per env "
                f"(action space {space})"
            )
        arr = arr.astype(np.int64).reshape(-1, 2)
        high = np.asarray(space.nvec)
        bad = np.nonzero(((arr < 0) | (arr >= high)).any(axis=1))[0]
        if len(bad):
            a = arr[bad[0]]
            raise ValueError(
                f"action {a.tolist()} is outside the action space {space}: the cell must lie in "
                f"[0, {high[0] - 1}] (row-major on the {self.rules.grid}x{self.rules.grid} grid) and the "
                f"class in [0, {high[1] - 1}]"
            )
        return arr


def _integral(arr: np.ndarray) -> bool:
    return np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
