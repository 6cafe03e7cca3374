"""The one evaluation loop: a policy plays chosen clips of a batched vector env deterministically, in lockstep
batches, and every clip's episode is kept (:class:`ClipEpisodes`). Training's periodic test evaluation
(:func:`evaluate_policy`) and ``evaluate.py`` both run it.

**Clip prediction.** The policy outputs a softmax over the classes at every step (the paper's ``Y_t``, each
step's prediction scored by eq. 7); the clip's prediction is the argmax of these probabilities *summed* over
the clip's steps. The paper does not spell out the aggregation; it builds on the soft-attention model of
Sharma et al. [11], whose code sums the per-step softmax, so we sum. The mean gives the same argmax, hence
the same accuracy; the *scores* we report (``ClipEpisodes.class_scores``, the ActivityNet results JSON) are the sums
divided by the clip's number of steps, so that they are probabilities in [0, 1] as the official results
format expects. With the env's ``early_exit`` a clip's steps are those before it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from agents.algorithms.policy import Policy
from agents.algorithms.rollout import collect_episodes

AGGREGATION = "argmax of the per-step softmax class probabilities summed over the clip's steps"


@dataclass
class ClipEpisodes:
    """Every evaluated clip's episode: per-clip arrays (N,) and per-step arrays (N, L), L the longest episode;
    a clip that stopped early (``early_exit``) has ``lengths[i] < L`` and -1 / NaN at its steps not taken."""

    clips: np.ndarray
    video_ids: list[str]
    labels: np.ndarray  # primary label
    label_sets: list[frozenset[int]]
    class_prob_sums: np.ndarray  # (N, C) per-step softmax probabilities summed over the clip's steps
    step_predictions: np.ndarray  # (N, L), -1 after the clip's last step
    locations: np.ndarray  # (N, L) cell of the glimpse read at each step, -1 after the clip's last step
    on_core: np.ndarray  # 1/0, NaN without core annotation
    returns: np.ndarray
    seconds: float
    lengths: np.ndarray  # (N,) steps each clip's episode took
    frames_watched: np.ndarray  # (N,) frames its predictions used (what the CNN had to compute)

    @property
    def steps(self) -> int:
        """Steps of the longest episode."""
        return int(self.step_predictions.shape[1])

    @property
    def step_mask(self) -> np.ndarray:
        """(N, L) bool: the steps each clip's episode took."""
        return np.arange(self.steps)[None, :] < self.lengths[:, None]

    @property
    def last_correct(self) -> np.ndarray:
        """Whether each clip's last prediction (the one it committed to where it stopped early) is one of its
        labels: bool (N,)."""
        return self._in_label_sets(self.step_predictions[np.arange(len(self.clips)), self.lengths - 1])

    @property
    def predictions(self) -> np.ndarray:
        """The clip predictions (see the module docstring)."""
        return self.class_prob_sums.argmax(1)

    @property
    def class_scores(self) -> np.ndarray:
        """(N, C) class scores in [0, 1]: the summed probabilities / the number of steps (same ranking)."""
        return self.class_prob_sums / self.lengths[:, None]

    @property
    def correct(self) -> np.ndarray:
        """Whether each clip's prediction is one of its labels: bool (N,)."""
        return self._in_label_sets(self.predictions)

    def _in_label_sets(self, predictions: np.ndarray) -> np.ndarray:
        """Whether each clip's entry of ``predictions`` (N,) is one of its labels: bool (N,)."""
        return np.array([int(p) in s for p, s in zip(predictions.tolist(), self.label_sets, strict=True)], dtype=bool)


def choose_clips(num_clips: int, episodes: int | None, seed: int) -> np.ndarray:
    """All clips, or ``episodes`` of them drawn without replacement with ``seed`` (sorted)."""
    if episodes is None or episodes >= num_clips:
        return np.arange(num_clips)
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    return np.sort(np.random.default_rng(seed).choice(num_clips, episodes, replace=False))


def play_clips(env: Any, policy: Any, clips: np.ndarray, seed: int = 0, progress: bool = False, desc: str = "",
              deterministic: bool = True) -> ClipEpisodes:
    """Run ``policy`` once on each of ``clips``, ``env.num_envs`` clips per lockstep batch via
    ``reset(options={"video_index": ...})`` (the last batch is padded with repeats, which are dropped).

    :param seed: reset seed of the first batch (batch starting at clip k gets ``seed + k``); the clip is fixed
        by the index, the seed only matters to policies or envs that draw.
    """
    from tqdm import tqdm

    if len(clips) == 0:
        raise ValueError("the evaluation subset has no clips")
    n, source = env.num_envs, env.unwrapped.source
    parts: dict[str, list[Any]] = {k: [] for k in ("ids", "probs", "preds", "locs", "core", "ret", "len", "frames")}
    start_time = time.perf_counter()
    with tqdm(total=len(clips), desc=desc or "clips", unit="clip", disable=not progress, leave=False) as bar:
        for start in range(0, len(clips), n):
            chunk = clips[start:start + n]
            keep = len(chunk)
            batch = collect_episodes(env, policy, seed=seed + start, options={"video_index": np.resize(chunk, n)},
                                     deterministic=deterministic, obs_keys=("location",))
            taken = batch.mask[:, :keep].T.numpy() > 0  # (keep, L)
            parts["ids"].extend(batch.video_ids[:keep])
            parts["probs"].append((batch.class_probs.double() * batch.mask[..., None]).sum(0)[:keep].numpy())
            parts["preds"].append(np.where(taken, batch.actions[:, :keep, 1].T.numpy(), -1))
            parts["locs"].append(np.where(taken, batch.obs["location"][:, :keep].T.numpy(), -1))
            parts["core"].append(batch.on_core[:, :keep].T.double().numpy())
            parts["ret"].append(batch.episode_returns[:keep].double().numpy())
            parts["len"].append(batch.lengths[:keep].numpy())
            parts["frames"].append(batch.frames_watched[:keep].numpy())
            bar.update(keep)
    clips = np.asarray(clips)
    width = max(a.shape[1] for a in parts["preds"])  # batches may differ in their longest episode
    for key in ("preds", "locs"):
        parts[key] = [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=-1) for a in parts[key]]
    parts["core"] = [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan) for a in parts["core"]]
    return ClipEpisodes(
        clips=clips, video_ids=parts["ids"], labels=np.asarray(source.labels(clips)),
        label_sets=[source.label_set(int(c)) for c in clips], class_prob_sums=np.concatenate(parts["probs"]),
        step_predictions=np.concatenate(parts["preds"]), locations=np.concatenate(parts["locs"]),
        on_core=np.concatenate(parts["core"]), returns=np.concatenate(parts["ret"]),
        seconds=time.perf_counter() - start_time, lengths=np.concatenate(parts["len"]).astype(np.int64),
        frames_watched=np.concatenate(parts["frames"]).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------- training's view
@dataclass
class EvalResult:
    """The scores training logs, over ``n_clips`` clips of one :class:`ClipEpisodes`.

    ``accuracy``: the clip prediction (module docstring) is one of the clip's labels. ``focus_accuracy``:
    fraction of the glimpses the agent saw that lay on the action core (NaN when the data has no core
    annotation). ``mean_reward``: mean episode return. ``glimpses_per_video``: mean episode length.
    ``frames_watched``: mean frames the predictions used. ``last_step_accuracy``: the last step's prediction
    alone. ``episodes`` (every clip's episode) is left out of :meth:`metrics`.
    """

    accuracy: float
    focus_accuracy: float
    mean_reward: float
    glimpses_per_video: float
    frames_watched: float
    last_step_accuracy: float
    n_clips: int
    episodes: ClipEpisodes = field(repr=False)

    def metrics(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "episodes"}

    @classmethod
    def of(cls, episodes: ClipEpisodes) -> EvalResult:
        focus = episodes.on_core
        return cls(
            accuracy=float(episodes.correct.mean()),
            focus_accuracy=float(np.nanmean(focus)) if np.isfinite(focus).any() else float("nan"),
            mean_reward=float(episodes.returns.mean()),
            glimpses_per_video=float(episodes.lengths.mean()),
            frames_watched=float(episodes.frames_watched.mean()),
            last_step_accuracy=float(episodes.last_correct.mean()),
            n_clips=len(episodes.clips),
            episodes=episodes,
        )


def evaluate_policy(policy: Policy, env: Any, *, max_clips: int | None = None, seed: int = 0,
                    deterministic: bool = True) -> EvalResult:
    """:func:`play_clips` over clips ``0 .. N-1`` of ``env`` (a batched vector env whose sub-envs all read the
    same subset) and the scores training logs.

    :param max_clips: evaluate only the first ``max_clips`` clips (default: all ``num_clips``).
    """
    total = int(env.unwrapped.num_clips)
    if max_clips is not None:
        total = min(total, max_clips)
    return EvalResult.of(play_clips(env, policy, np.arange(total), seed, deterministic=deterministic))
