"""Deterministic evaluation of a :class:`~agents.policy.Policy` over every clip of an env's subset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agents.policy import Policy
from agents.rollout import collect_episodes


@dataclass
class EvalResult:
    """Scores over ``n_clips`` clips.

    ``accuracy``: the argmax of the class probabilities summed over an episode's steps is the label.
    ``focus_accuracy``: fraction of the glimpses the agent saw that lay on the action core (NaN when the
    data has no core annotation). ``mean_reward``: mean episode return. ``glimpses_per_video``: mean
    episode length. ``last_step_accuracy``: the last step's prediction alone.
    The per-clip arrays (``labels``, ``predictions``, ``summed_class_probs``, ``video_ids``) are kept in
    memory for reports and are left out of :meth:`metrics`.
    """

    accuracy: float
    focus_accuracy: float
    mean_reward: float
    glimpses_per_video: float
    last_step_accuracy: float
    n_clips: int
    labels: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    summed_class_probs: np.ndarray = field(repr=False)
    video_ids: list[str] = field(repr=False)

    def metrics(self) -> dict[str, float]:
        keep = ("accuracy", "focus_accuracy", "mean_reward", "glimpses_per_video", "last_step_accuracy", "n_clips")
        return {k: v for k, v in asdict(self).items() if k in keep}


def evaluate_policy(
    policy: Policy, env: Any, *, max_clips: int | None = None, seed: int = 0, deterministic: bool = True
) -> EvalResult:
    """Run ``policy`` once over clips ``0 .. N-1`` of ``env`` (a batched vector env whose sub-envs all read
    the same subset), ``env.num_envs`` clips at a time via ``reset(options={"video_index": ...})``.

    :param max_clips: evaluate only the first ``max_clips`` clips (default: all ``num_clips``).
    :param seed: reset seed (the clip choice is fixed by the index; the seed only matters to policies or
        envs that draw, e.g. ``initial_location="random"``).
    """
    n = env.num_envs
    total = int(env.unwrapped.num_clips)
    if max_clips is not None:
        total = min(total, max_clips)
    if total == 0:
        raise ValueError("the evaluation subset has no clips")
    labels, preds, probs, ids, returns, lengths, focus, last = [], [], [], [], [], [], [], []
    for start in range(0, total, n):
        idx = np.arange(start, min(start + n, total))
        keep = len(idx)
        padded = np.resize(idx, n)  # the last batch repeats clips to fill every sub-env
        batch = collect_episodes(
            env, policy, seed=seed + start, options={"video_index": padded}, deterministic=deterministic,
            obs_keys=(),
        )
        summed = batch.class_probs.sum(0)[:keep].numpy()  # (keep, C)
        labels.append(batch.labels[:keep].numpy())
        probs.append(summed)
        preds.append(summed.argmax(-1))
        last.append(batch.actions[-1, :keep, 1].numpy())
        ids.extend(batch.video_ids[:keep])
        returns.append(batch.episode_returns[:keep].numpy())
        lengths.append(np.full(keep, batch.length))
        focus.append(batch.on_core[:, :keep].numpy().reshape(-1))
    y, p = np.concatenate(labels), np.concatenate(preds)
    f = np.concatenate(focus)
    return EvalResult(
        accuracy=float((p == y).mean()),
        focus_accuracy=float(np.nanmean(f)) if np.isfinite(f).any() else float("nan"),
        mean_reward=float(np.concatenate(returns).mean()),
        glimpses_per_video=float(np.concatenate(lengths).mean()),
        last_step_accuracy=float((np.concatenate(last) == y).mean()),
        n_clips=len(y),
        labels=y,
        predictions=p,
        summed_class_probs=np.concatenate(probs),
        video_ids=ids,
    )
