"""The rules of an episode, once, for a batch of episodes.

``GlimpseEnv`` runs a batch of one and ``GlimpseVectorEnv`` a batch of ``num_envs``; both call only
this module to reset, step, observe and describe episodes, so their dynamics cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.periphery import check_periphery_dim
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
    #: k, values per cell of the ``periphery`` observation (0: none, the blind glimpse mode). ``build``
    #: resolves the env argument's default (None) to ``default_periphery_dim(D)`` in glimpse mode, 0 in cube mode.
    periphery_dim: int = 0
    #: Append to every cell's periphery its motion periphery (``envs.periphery.motion``: k group means of the
    #: cell's change since the previous frame), so the ``periphery`` observation holds 2k values per cell.
    periphery_motion: bool = False
    #: A third action component, ``stop``: 1 ends the episode after this step's prediction, which then counts
    #: for every step not taken (the agent commits to it), and frames never reached are never computed.
    early_exit: bool = False
    #: Reward charged per frame watched, paid at the last step (0: none): what a policy pays for compute.
    frame_cost: float = 0.0

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
        check_periphery_dim(self.periphery_dim, self.feature_dim)
        if not isinstance(self.periphery_motion, bool | np.bool_):
            raise ValueError(f"periphery_motion must be True or False, got {self.periphery_motion!r}")
        if self.periphery_motion and not self.periphery_dim:
            raise ValueError("periphery_motion=True needs a periphery: leave periphery_dim out (the default k) or set "
                             "it to k >= 1")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta!r}")
        if not isinstance(self.early_exit, bool | np.bool_):
            raise ValueError(f"early_exit must be True or False, got {self.early_exit!r}")
        if not (isinstance(self.frame_cost, int | float) and np.isfinite(self.frame_cost) and self.frame_cost >= 0):
            raise ValueError(f"frame_cost must be a finite number >= 0 (reward per frame watched), got "
                             f"{self.frame_cost!r}")

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

    # The rules below are plain arithmetic, so the same code steps one episode (Python ints, as the
    # single env does, fast) or a batch (numpy arrays, as the vector env does).
    def frame_of(self, steps):
        """Frame of the glimpse seen after ``steps`` steps (the last frame once the clip is used up)."""
        m = self.glimpses_per_frame
        return steps // m - (steps >= self.frames * m)

    def next_frame_of(self, steps):
        """Frame that the cell chosen at this step will be looked at in."""
        return self.frame_of(steps + 1)

    def observed_frame(self, steps, done):
        """Frame observed after ``steps`` steps: once the episode is over, the last frame a prediction used, so
        the final observation computes nothing new (a stopped or budget-limited agent never reaches the next)."""
        return self.frame_of(steps - done)

    def frames_watched(self, steps):
        """Frames a finished episode of ``steps`` steps computed: those its predictions used."""
        return self.frame_of(steps - 1) + 1

    def progress(self, steps):
        """(frame index / T, glimpse index within the frame / m) after ``steps`` steps."""
        m = self.glimpses_per_frame
        return (steps // m) / self.frames, (steps % m) / m

    def transition(self, steps, n_true_pos, n_false_pos, correct, stop=0):
        """One step: count the prediction, end the episode when it is due or the agent stops, pay the reward.

        A stop (``early_exit``) commits this step's prediction for the steps not taken, so the counts always
        cover the whole episode length. Returns (steps, n_true_pos, n_false_pos, terminated, reward).
        """
        steps = steps + 1
        length = self.episode_length
        weight = 1 + stop * (length - steps)  # the steps this prediction counts for
        n_true_pos = n_true_pos + correct * weight
        n_false_pos = n_false_pos + (1 - correct) * weight
        last = (steps >= length) | (stop > 0)
        reward = step_reward(self.reward_mode, correct, n_true_pos, n_false_pos, last,
                             self.eta, self.reward_positive, self.reward_negative, weight)
        if self.frame_cost:
            reward = reward - last * self.frame_cost * self.frames_watched(steps)
        return steps, n_true_pos, n_false_pos, last, reward

    def stop_returns(self, rewards: np.ndarray, n_true_pos: np.ndarray, n_false_pos: np.ndarray) -> np.ndarray:
        """(L, B): the return each episode would have earned had the agent stopped at step t (t = 1 .. L).

        ``rewards``, ``n_true_pos``, ``n_false_pos`` (L, B) are the rewards and the counts after every step of
        whole episodes (no stop, all of length L). The steps before t are those that happened; stopping at t
        commits step t's prediction (:meth:`transition`). The row of the last step is the actual return.
        """
        rewards, tp, fp = (np.asarray(a) for a in (rewards, n_true_pos, n_false_pos))
        length = rewards.shape[0]
        if length != self.episode_length:
            raise ValueError(f"stop_returns needs whole episodes of {self.episode_length} steps, got {length}")
        tp_before = np.concatenate([np.zeros_like(tp[:1]), tp[:-1]])
        fp_before = np.concatenate([np.zeros_like(fp[:1]), fp[:-1]])
        correct = tp - tp_before
        steps_before = np.broadcast_to(np.arange(length)[:, None], rewards.shape)
        *_, stop_reward = self.transition(steps_before, tp_before, fp_before, correct, stop=1)
        earned_before = np.cumsum(rewards, axis=0) - rewards
        return earned_before + stop_reward

    @property
    def action_size(self) -> int:
        """Components of an action: [cell, class], plus ``stop`` with ``early_exit``."""
        return 3 if self.early_exit else 2

    @property
    def action_names(self) -> str:
        return "[cell, class, stop]" if self.early_exit else "[cell, class]"

    def check_action(self, cell: int, prediction: int, space: spaces.MultiDiscrete, stop: int = 0) -> None:
        """Raise ``ValueError`` saying how to fix an action outside the action space."""
        if not (0 <= cell < self.num_cells and 0 <= prediction < self.num_classes and stop in (0, 1)):
            action = [cell, prediction, stop] if self.early_exit else [cell, prediction]
            raise ValueError(
                f"action {action} is outside the action space {space}: the cell must lie in "
                f"[0, {self.num_cells - 1}] (row-major on the {self.grid}x{self.grid} grid), the class in "
                f"[0, {self.num_classes - 1}]" + (" and stop in {0, 1}" if self.early_exit else "")
            )

    def observation_space(self) -> spaces.Dict:
        dtype = np.dtype(self.observation_dtype)
        entries: dict[str, spaces.Space[Any]] = {
            "glimpse": spaces.Box(0.0, FEATURE_MAX, (self.feature_dim,), dtype),
            "location": spaces.Discrete(self.num_cells),
            "progress": spaces.Box(0.0, 1.0, (2,), np.float32),
        }
        if self.periphery_dim:
            entries["periphery"] = spaces.Box(0.0, FEATURE_MAX, (self.grid, self.grid, self.periphery_values), dtype)
        if self.observation_mode == "cube":
            entries["cube"] = spaces.Box(0.0, FEATURE_MAX, (self.grid, self.grid, self.feature_dim), dtype)
        return spaces.Dict(entries)

    @property
    def periphery_values(self) -> int:
        """Values per cell of the ``periphery`` observation: k, or 2k with ``periphery_motion``."""
        return self.periphery_dim * (2 if self.periphery_motion else 1)

    def action_space(self) -> spaces.MultiDiscrete:
        return spaces.MultiDiscrete([self.num_cells, self.num_classes, 2][:self.action_size])


class EpisodeBatch:
    """State of ``size`` episodes over one feature source (the batched vector env's state)."""

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

    def advance(self, idx: np.ndarray, cells: np.ndarray, predictions: np.ndarray,
                stops: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Score the predictions of slots ``idx``, move their glimpses to ``cells``, end those that ``stops``.

        Returns (reward float64, as the single env's float, terminated bool) for those slots.
        """
        correct = self.source.is_correct(self.clip[idx], predictions)
        steps, n_pos, n_neg, last, reward = self.rules.transition(
            self.steps[idx], self.n_true_pos[idx], self.n_false_pos[idx], correct, stops)
        self.steps[idx], self.n_true_pos[idx], self.n_false_pos[idx], self.done[idx] = steps, n_pos, n_neg, last
        self.location[idx] = cells
        self.prediction[idx] = predictions
        return np.asarray(reward, dtype=np.float64), last

    def observe(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Batched observation and info entries of slots ``idx``.

        ``is_success`` (last prediction right) is only meaningful where the episode is done.
        """
        r = self.rules
        clips, location, steps = self.clip[idx], self.location[idx], self.steps[idx]
        frames = r.observed_frame(steps, self.done[idx])
        progress = np.stack(r.progress(steps), axis=-1).astype(np.float32)
        if r.periphery_dim:
            glimpse, on_core, periphery = self.source.glimpse_on_core_periphery(clips, frames, location)
        else:
            glimpse, on_core = self.source.glimpse_on_core(clips, frames, location)
        obs = {"glimpse": glimpse, "location": location, "progress": progress}
        if r.periphery_motion:
            periphery = np.concatenate([periphery, self.source.motion(clips, frames)], axis=-1)
        if r.periphery_dim:
            obs["periphery"] = periphery
        if r.observation_mode == "cube":
            obs["cube"] = self.source.cube(clips, frames)
        info: dict[str, np.ndarray] = {
            "label": self.label[idx],
            "video_id": self.video_id[idx],
            "frame": frames,
            "location": location.copy(),
            "n_true_pos": self.n_true_pos[idx],
            "n_false_pos": self.n_false_pos[idx],
            "is_success": self.source.is_correct(clips, self.prediction[idx]) & self.done[idx],
        }
        if on_core is not None:  # no core annotation: no key, as the single env (no object arrays of None)
            info["on_core"] = on_core
        return obs, info

    def next_core_mask(self, idx: np.ndarray) -> np.ndarray:
        """Core cells (bool, (B, K*K)) of the frame the next glimpse (the next action's cell) lands in."""
        require_core(self.source)
        return self.source.core_mask(self.clip[idx], self.rules.next_frame_of(self.steps[idx]))

    def check_actions(self, actions: np.ndarray, space: spaces.MultiDiscrete) -> np.ndarray:
        """Actions as int64 (B, 2) or, with ``early_exit``, (B, 3); raise ``ValueError`` with a fix when they
        are outside the space."""
        arr = np.asarray(actions)
        size = self.rules.action_size
        if arr.shape[-1:] != (size,) or not is_integral(arr):
            raise ValueError(
                f"invalid action {actions!r}: expected integers {self.rules.action_names} of shape ({size},) per "
                f"env (action space {space})"
            )
        arr = arr.astype(np.int64).reshape(-1, size)
        bad = np.nonzero(((arr < 0) | (arr >= np.asarray(space.nvec))).any(axis=1))[0]
        if len(bad):
            self.rules.check_action(*(int(v) for v in arr[bad[0]]), space=space)
        return arr


def require_core(source: FeatureSource) -> None:
    if not source.has_core:
        raise ValueError(
            f"{source.description} has no ground-truth core annotation (only the synthetic benchmark and "
            "stores exported from it have one), so the oracle policy and focus accuracy are unavailable"
        )


def is_integral(arr: np.ndarray) -> bool:
    """Integers, or finite floats with integral values (what an action may be given as)."""
    if np.issubdtype(arr.dtype, np.integer):
        return True
    return np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
