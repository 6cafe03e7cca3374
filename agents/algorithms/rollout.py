"""Whole-episode rollouts on the batched vector env.

Episodes last at most L = min(T * m, glimpse_budget) steps, so ``n`` episodes reset together stay in
lockstep: reset, at most L steps, and without an early exit all terminate at once. We reset explicitly
before every batch, so each batch is a clean (L', n) block (L' the longest episode) that the LSTM can run
over at once. With the env's ``early_exit`` an episode may stop sooner; its later steps (the vector env's
autoreset and the episode it starts) are kept out by ``EpisodeBatch.mask``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.algorithms.policy import NetworkPolicy, Policy

# Observation keys stored for learning; "periphery" and "cube" only when the env emits them.
OBS_KEYS = ("glimpse", "location", "progress", "periphery", "cube")


@dataclass
class RolloutBatch:
    """One lockstep batch of B whole episodes of L steps.

    ``obs[key]`` (L, B, ...) is what the agent saw at each step (torch, float32 / int64 location);
    ``actions`` (L, B, 2); ``rewards`` (L, B); ``labels`` (B,); ``on_core`` (L, B) float, 1/0 whether the
    glimpse the agent saw was on the action core, NaN where unknown; ``class_probs`` (L, B, C);
    ``success`` (B,) whether the last prediction was right; ``video_ids`` (B,).
    ``location_log_prob``, ``class_log_prob``, ``values`` (L, B) are filled for NetworkPolicy rollouts,
    ``mask`` (L, B) is 1 at the steps of each episode (0 after an early exit: rewards there are 0, and losses
    must not count them) and ``frames_watched`` (B,) the frames its predictions used. ``n_true_pos`` and
    ``n_false_pos`` (L, B) are the env's counts of right and wrong predictions after each step.
    """

    obs: dict[str, torch.Tensor]
    actions: torch.Tensor
    rewards: torch.Tensor
    labels: torch.Tensor
    on_core: torch.Tensor
    class_probs: torch.Tensor
    success: torch.Tensor
    video_ids: list[str]
    mask: torch.Tensor
    frames_watched: torch.Tensor
    n_true_pos: torch.Tensor
    n_false_pos: torch.Tensor
    location_log_prob: torch.Tensor | None = None
    class_log_prob: torch.Tensor | None = None
    values: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) int64: the steps each episode took."""
        return self.mask.sum(0).long()

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_steps(self) -> int:
        """Env steps of the episodes (those after an early exit not counted)."""
        return int(self.mask.sum())

    @property
    def episode_returns(self) -> torch.Tensor:
        return self.rewards.sum(0)


def _on_core(info: Mapping[str, Any], n: int) -> np.ndarray:
    """info["on_core"] -> float (n,): 1/0, NaN where a sub-env did not report it (Gymnasium's ``_on_core`` mask)
    or the key is absent (data without a core annotation)."""
    raw = info.get("on_core")
    if raw is None:
        return np.full(n, np.nan)
    arr = np.asarray(raw)
    mask = info.get("_on_core")
    out = arr.astype(np.float64).reshape(-1)
    if mask is not None:  # Gymnasium's per-sub-env "key present" mask
        out = np.where(np.asarray(mask, bool), out, np.nan)
    return np.broadcast_to(out, (n,)).copy()


def _own(array: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """``array``, copied only if the env handed back a buffer it reuses (cubes are large)."""
    if previous is not None and np.shares_memory(array, previous):
        return np.array(array)
    return np.asarray(array)


def collect_episodes(
    env: Any,
    policy: Policy,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    deterministic: bool = False,
    obs_keys: tuple[str, ...] = OBS_KEYS,
) -> RolloutBatch:
    """Reset ``env`` (a batched vector env) and run one episode in every sub-env with ``policy``.

    :param seed: passed to ``env.reset`` (sub-env i gets ``seed + i``).
    :param options: passed to ``env.reset`` (e.g. ``{"video_index": indices}``).
    :param obs_keys: observation entries to store for learning (those the env emits); () for none.
    """
    n = env.num_envs
    obs, info = env.reset(seed=seed, options=options)
    labels = np.asarray(info["label"]).reshape(n)
    video_ids = [str(v) for v in np.asarray(info.get("video_id", np.full(n, ""))).reshape(n)]
    policy.reset(n)
    needs_core = policy.needs_core_mask
    rich = isinstance(policy, NetworkPolicy)
    steps_obs: list[dict[str, np.ndarray]] = []
    actions, rewards, on_core, probs, loc_lp, cls_lp, values = [], [], [], [], [], [], []
    true_pos, false_pos = [], []
    alive = np.ones(n, dtype=bool)  # in its first episode still (steps after an early exit are masked out)
    masks, success, frames = [], np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    while alive.any():
        core_mask = env.next_core_mask() if needs_core else None
        steps_obs.append({k: _own(obs[k], steps_obs[-1][k] if steps_obs else None) for k in obs_keys if k in obs})
        on_core.append(np.where(alive, _on_core(info, n), np.nan))
        masks.append(alive.copy())
        if rich:
            res = policy.step(obs, deterministic, core_mask)
            act, cp = res.actions.cpu().numpy(), res.class_probs
            loc_lp.append(res.location_log_prob)
            cls_lp.append(res.class_log_prob)
            values.append(res.value)
        else:
            act, cp = policy.act(obs, deterministic, core_mask)
            cp = torch.as_tensor(cp)
        actions.append(act)
        probs.append(cp)
        obs, reward, terminated, truncated, info = env.step(act)
        rewards.append(np.where(alive, np.asarray(reward, dtype=np.float32), np.float32(0)))
        true_pos.append(np.asarray(info["n_true_pos"], dtype=np.int64).reshape(n))
        false_pos.append(np.asarray(info["n_false_pos"], dtype=np.int64).reshape(n))
        ended = np.logical_or(terminated, truncated) & alive
        if ended.any():
            success[ended] = np.asarray(info.get("is_success", np.zeros(n, bool))).astype(bool).reshape(n)[ended]
            frames[ended] = np.asarray(info.get("frame", np.zeros(n)), dtype=np.int64).reshape(n)[ended] + 1
            alive &= ~ended
    stacked = {}
    for key in steps_obs[0]:
        value = torch.from_numpy(np.stack([o[key] for o in steps_obs]))  # (L, B, ...)
        stacked[key] = value.long() if key == "location" else value.float()
    return RolloutBatch(
        obs=stacked,
        actions=torch.from_numpy(np.stack(actions)).long(),
        rewards=torch.from_numpy(np.stack(rewards)),
        labels=torch.from_numpy(labels).long(),
        on_core=torch.from_numpy(np.stack(on_core)).float(),
        class_probs=torch.stack([torch.as_tensor(p) for p in probs]).float(),
        success=torch.from_numpy(success),
        video_ids=video_ids,
        location_log_prob=torch.stack(loc_lp) if rich else None,
        class_log_prob=torch.stack(cls_lp) if rich else None,
        values=torch.stack(values) if rich else None,
        mask=torch.from_numpy(np.stack(masks)).float(),
        frames_watched=torch.from_numpy(frames),
        n_true_pos=torch.from_numpy(np.stack(true_pos)),
        n_false_pos=torch.from_numpy(np.stack(false_pos)),
    )
