"""Batched vector env: many glimpse episodes advanced by one numpy step (no loop over sub-envs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.build import build
from envs.dynamics import EpisodeBatch
from envs.glimpse_env import RESET_OPTIONS, check_reset_options, choose_clip


class GlimpseVectorEnv(VectorEnv):
    """``num_envs`` copies of ``GlimpseEnv`` in one numpy batch.

    Same observations, rewards and infos as ``SyncVectorEnv`` over the single env (seeds ``seed + i``
    per sub-env, Gymnasium's next-step autoreset: the step after an episode ends resets that sub-env
    and ignores its action). Made by ``gymnasium.make_vec(id, num_envs=n,
    vectorization_mode="vector_entry_point", **env_kwargs)``, it takes the single env's arguments.

    Episodes have a fixed length, so sub-envs reset together stay in lockstep: this is what lets
    recurrent agents collect whole episodes at once. ``reset(options={"video_index": v})`` takes an int
    (all sub-envs) or an array of ``num_envs`` clip numbers, and ``options["reset_mask"]`` resets only
    some sub-envs, as in ``SyncVectorEnv``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, dataset: str = "synthetic", render_mode: str | None = None, **kwargs: Any):
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError("the batched vector env does not render; render a single env (gymnasium.make)")
        self.num_envs = int(num_envs)
        self.source, self.rules = build(dataset, **kwargs)
        self.single_observation_space = self.rules.observation_space()
        self.single_action_space = self.rules.action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._batch = EpisodeBatch(self.source, self.rules, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._started = False
        self._all = np.arange(self.num_envs)

    @property
    def num_clips(self) -> int:
        return self.source.num_clips

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds given for {self.num_envs} sub-envs")
        check_reset_options(options, (*RESET_OPTIONS, "reset_mask"))
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        idx = self._all if mask is None else np.nonzero(np.asarray(mask, dtype=bool))[0]
        chosen = set(idx.tolist())
        for i, s in enumerate(seeds):
            if i in chosen and (s is not None or self._rngs[i] is None):
                self._rngs[i], _ = seeding.np_random(s)
        video_index = options.get("video_index")
        if video_index is not None:
            video_index = np.broadcast_to(np.asarray(video_index, dtype=object), (self.num_envs,))[idx]
        self._start(idx, video_index)
        self._autoreset[idx] = False
        self._started = True
        obs, info = self._batch.observe(self._all)
        return obs, self._vector_info(idx, info, final=np.zeros(len(idx), bool))

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("step() called before reset(): call envs.reset() first")
        actions = np.asarray(actions)
        size = self.rules.action_size
        if actions.shape != (self.num_envs, size):
            raise ValueError(f"actions have shape {actions.shape}; expected ({self.num_envs}, {size}): one "
                             f"{self.rules.action_names} per sub-env")
        resetting = np.nonzero(self._autoreset)[0]
        stepping = np.nonzero(~self._autoreset)[0]
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        if len(stepping):
            act = self._batch.check_actions(actions[stepping], self.single_action_space)
            stops = act[:, 2] if size == 3 else 0
            rewards[stepping], terminated[stepping] = self._batch.advance(stepping, act[:, 0], act[:, 1], stops)
        if len(resetting):
            self._start(resetting, None)
        self._autoreset = terminated.copy()
        obs, info = self._batch.observe(self._all)
        infos = self._vector_info(self._all, info, final=terminated)
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def next_core_mask(self) -> np.ndarray:
        """Ground-truth core cells (bool (num_envs, K*K)) of the frame each next glimpse lands in."""
        return self._batch.next_core_mask(self._all)

    # -- helpers --------------------------------------------------------------------------------
    def _start(self, idx: np.ndarray, video_index: np.ndarray | None) -> None:
        clips = np.empty(len(idx), dtype=np.int64)
        locations = np.full(len(idx), self.rules.center_cell, dtype=np.int64)
        random_location = self.rules.initial_location == "random"
        for n, i in enumerate(idx):  # per-sub-env generators keep the draws equal to SyncVectorEnv's
            rng = self._rngs[i]
            if rng is None:
                rng, _ = seeding.np_random(None)
                self._rngs[i] = rng
            options = None if video_index is None else {"video_index": video_index[n]}
            clips[n] = choose_clip(rng, self.num_clips, options)
            if random_location:
                locations[n] = rng.integers(self.rules.num_cells)
        self._batch.start(idx, clips, locations)

    def _vector_info(self, idx: np.ndarray, info: dict[str, np.ndarray], final: np.ndarray) -> dict[str, Any]:
        """Gymnasium's vector info layout for sub-envs ``idx``: per key an array and a ``_key`` mask."""
        entries = {k: v[idx] for k, v in info.items()}
        infos: dict[str, Any] = {}
        present = np.zeros(self.num_envs, dtype=bool)
        present[idx] = True
        if not final.any():
            del entries["is_success"]  # like SyncVectorEnv: a key no sub-env reported is absent
        for key, values in entries.items():
            mask = present.copy()
            if key == "is_success":
                mask[idx] = final
            full = np.zeros(self.num_envs, dtype=values.dtype) if values.dtype != object else np.full(
                self.num_envs, None, dtype=object)
            full[idx] = values
            if key == "is_success":
                full[~mask] = False
            infos[key] = full
            infos[f"_{key}"] = mask
        return infos
