"""Scores of an evaluation, as pure functions: accuracy, ActivityNet mAP / Hit@k, confusion matrix, FLOPs.

- Clip accuracy: a clip's prediction is the class with the highest *summed* softmax probability over its
  steps (why summed: :mod:`agents.evaluation.episodes`); a multi-label clip (ActivityNet) counts as right when
  the prediction is one of its labels.
- ActivityNet untrimmed classification: :func:`activitynet_classification` computes mAP and Hit@k exactly
  as the fixed official evaluator (ActivityNet repository, ``Evaluation/eval_classification.py``) does,
  from the official JSON structures. Offline, no video is blocked (the official script downloads a list).
- Compute: :func:`counting_flops` counts FLOPs with ``torch.utils.flop_counter.FlopCounterMode``;
  :func:`measure_cost` gives the attention model's FLOPs and the latency of one clip.
- :func:`score` turns a :class:`~agents.evaluation.episodes.ClipEpisodes` (the one evaluation loop's result) into all of
  the above.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from agents.evaluation.episodes import ClipEpisodes

#: ``version`` field of exported ActivityNet results.
ACTIVITYNET_VERSION = "VERSION 1.3"


# ---------------------------------------------------------------------------------------------- accuracy
def topk_correct(scores: np.ndarray, label_sets: Sequence[Iterable[int]], k: int) -> np.ndarray:
    """Whether any of each clip's labels is among its ``k`` highest scores: bool (N,).

    :param scores: (N, C) class scores per clip.
    :param label_sets: the labels of each clip (one or more).
    """
    k = min(k, scores.shape[1])
    # A stable sort of the negated scores keeps the lower class index first among ties.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.array([bool(set(row.tolist()) & set(labels)) for row, labels in zip(top, label_sets, strict=True)])


def confusion_matrix(primary: np.ndarray, predictions: np.ndarray, label_sets: Sequence[Iterable[int]],
                     num_classes: int) -> np.ndarray:
    """Counts (C, C), rows = true class, columns = predicted class.

    A multi-label clip predicted as one of its labels lands on the diagonal of that label; otherwise its row
    is its first (primary) label.
    """
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for true, pred, labels in zip(primary.tolist(), predictions.tolist(), label_sets, strict=True):
        row = pred if pred in set(labels) else true
        cm[row, pred] += 1
    return cm


def per_class_accuracy(primary: np.ndarray, correct: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy (C,) with NaN for classes without clips, clip count (C,)) over clips grouped by primary label."""
    counts = np.bincount(primary, minlength=num_classes)
    hits = np.bincount(primary, weights=correct.astype(np.float64), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan), counts


# ---------------------------------------------------------------------------------------------- ActivityNet
@dataclass
class ActivityNetScores:
    """Untrimmed classification scores.

    ``mean_ap``: mean of ``average_precision`` over the classes that have a positive in the ground truth
    (the official evaluator's class list). ``hit_at_k``: share of ground-truth videos with any of their
    labels among their ``k`` best-scored predictions. ``blocked_videos``: none offline.
    """

    mean_ap: float
    hit_at_k: float
    top_k: int
    average_precision: dict[str, float] = field(repr=False)
    num_videos: int = 0
    blocked_videos: tuple[str, ...] = ()


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC 2011 interpolated average precision (the official evaluator's ``interpolated_prec_rec``)."""
    mprec = np.hstack([[0.0], prec, [0.0]])
    mrec = np.hstack([[0.0], rec, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # non-increasing from the right
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _descending(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score, as the official ``argsort()[::-1]``; ties: the later entry first.

    The official script uses numpy's default (unstable) sort; a stable sort gives the same order wherever
    that one is stable (always for short lists) and the same result on every machine.
    """
    return np.argsort(scores, kind="stable")[::-1]


def activitynet_classification(
    ground_truth: Mapping[str, Iterable[str]],
    predictions: Mapping[str, Sequence[Mapping[str, Any]]],
    top_k: int = 3,
) -> ActivityNetScores:
    """mAP and Hit@``top_k`` of untrimmed-video predictions, as the official ActivityNet evaluator.

    :param ground_truth: the subset's videos, ``video_id -> label names`` (a video may have several; repeated
        labels count once: the evaluator keeps distinct (video, label) pairs).
    :param predictions: the ``results`` entry of a results JSON: ``video_id -> [{"label", "score"}, ...]``.

    Per class, its predictions sorted by decreasing score are true positives the first time their video has
    the class in the ground truth, false positives otherwise (unknown video, or the video already matched);
    AP is :func:`interpolated_prec_rec` of the running precision and recall. Classes without a positive in
    the ground truth are not scored (the official script raises on a prediction of such a class; here that
    prediction still takes one of its video's top-k places for Hit@k).
    """
    class_videos: dict[str, set[str]] = {}
    video_labels: dict[str, set[str]] = {}
    for video, labels in ground_truth.items():
        for label in labels:
            class_videos.setdefault(label, set()).add(video)
            video_labels.setdefault(video, set()).add(label)

    by_class: dict[str, tuple[list[str], list[float]]] = {c: ([], []) for c in class_videos}
    by_video: dict[str, tuple[list[str], list[float]]] = {}
    for video, entries in predictions.items():
        for entry in entries:
            label, score = entry["label"], float(entry["score"])
            if label in by_class:
                by_class[label][0].append(video)
                by_class[label][1].append(score)
            if video in video_labels:
                names, scores = by_video.setdefault(video, ([], []))
                names.append(label)
                scores.append(score)

    ap: dict[str, float] = {}
    for label, positives in class_videos.items():
        videos, scores = by_class[label]
        order = _descending(np.asarray(scores, dtype=np.float64))
        matched: set[str] = set()
        tp = np.zeros(len(order))
        for rank, j in enumerate(order):
            video = videos[j]
            if video in positives and video not in matched:
                tp[rank] = 1.0
                matched.add(video)
        tp_sum = np.cumsum(tp)
        fp_sum = np.cumsum(1.0 - tp)
        rec = tp_sum / len(positives)
        with np.errstate(invalid="ignore"):
            prec = tp_sum / (tp_sum + fp_sum)
        ap[label] = interpolated_prec_rec(prec, rec)

    hits = []
    for video in sorted(video_labels):  # the official np.unique order; the mean does not depend on it
        if video not in by_video:
            hits.append(0.0)
            continue
        names, scores = by_video[video]
        best = {names[j] for j in _descending(np.asarray(scores, dtype=np.float64))[:top_k]}
        hits.append(1.0 if best & video_labels[video] else 0.0)
    return ActivityNetScores(
        mean_ap=float(np.mean(list(ap.values()))) if ap else float("nan"),
        hit_at_k=float(np.mean(hits)) if hits else float("nan"),
        top_k=top_k,
        average_precision=ap,
        num_videos=len(video_labels),
    )


def activitynet_results(
    video_ids: Sequence[str], scores: np.ndarray, class_names: Sequence[str], top_k: int | None = None,
    external_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Predictions in the official results JSON format.

    :param scores: (N, C) per-video class scores.
    :param top_k: keep each video's ``top_k`` best classes (None: all, which scores exactly like the
        in-memory evaluation).
    """
    results: dict[str, list[dict[str, Any]]] = {}
    k = scores.shape[1] if top_k is None else min(top_k, scores.shape[1])
    for video, row in zip(video_ids, scores, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        results[str(video)] = [{"label": class_names[c], "score": float(row[c])} for c in order.tolist()]
    return {
        "version": ACTIVITYNET_VERSION,
        "results": results,
        "external_data": dict(external_data or {
            "used": True, "details": "GoogLeNet (torchvision) inception5b features; see the store's meta.json",
        }),
    }


class GroundTruthError(ValueError):
    """An ActivityNet annotation file that cannot be used as ground truth."""


def load_activitynet_ground_truth(path: str | Path, subset: str) -> dict[str, list[str]]:
    """``video_id -> label names`` of ``subset`` in an ActivityNet annotation JSON (in file order)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GroundTruthError(f"no ActivityNet ground truth at '{path}'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"'{path}' is not a JSON file ({exc})") from None
    missing = [k for k in ("database", "taxonomy", "version") if k not in data]
    if missing:
        raise GroundTruthError(
            f"'{path}' is not an ActivityNet annotation file: it lacks {', '.join(missing)} (expected the "
            "official activity_net.v1-3.min.json layout)"
        )
    subsets = sorted({str(v.get("subset")) for v in data["database"].values()})
    gt = {vid: [a["label"] for a in v.get("annotations", [])] for vid, v in data["database"].items()
          if v.get("subset") == subset}
    gt = {vid: labels for vid, labels in gt.items() if labels}
    if not gt:
        raise GroundTruthError(
            f"the ActivityNet ground truth '{path}' has no labelled videos in subset {subset!r} (it has "
            f"{', '.join(subsets) or 'none'}); pass --subset with one of those (testing labels are withheld)"
        )
    return gt


# ---------------------------------------------------------------------------------------------- FLOPs
def _elementwise(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One FLOP per output element (elementwise product)."""
    return math.prod(out_shape) if out_shape else 0


def _reduction(input_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One FLOP per input element (sum or mean)."""
    return math.prod(input_shape) if input_shape else 0


#: Formulas added to PyTorch's (which count matrix products and convolutions only), so that attention
#: written as ``(weights * cells).sum(-2)`` or ``(cells * query).sum(-1)`` costs its 2 FLOPs per
#: multiply-add like a matrix product does.
EXTRA_FLOP_FORMULAS = {
    torch.ops.aten.mul: _elementwise,
    torch.ops.aten.sum: _reduction,
    torch.ops.aten.mean: _reduction,
}


@contextmanager
def counting_flops() -> Iterator[FlopCounterMode]:
    """A ``FlopCounterMode`` (``.get_total_flops()``) for the torch code run inside.

    Counts matrix products and convolutions (PyTorch's formulas, 2 FLOPs per multiply-add) plus elementwise
    products and sums (1 each, :data:`EXTRA_FLOP_FORMULAS`). Fused oneDNN / cuDNN RNN kernels are switched off
    inside, so an LSTM runs as the matrix products the counter sees (same results).
    """
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN's TF32 notice when its flags are toggled
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
            with counter:
                yield counter


@cache
def googlenet_flops_per_frame(input_size: int = 224) -> int:
    """FLOPs of torchvision's GoogLeNet from the image to ``inception5b`` (the feature cube), one frame."""
    import torchvision

    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    x = torch.zeros(1, 3, input_size, input_size)
    stem = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
            "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
            "inception5a", "inception5b")
    with torch.no_grad(), counting_flops() as counter:
        for name in stem:
            x = getattr(model, name)(x)
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------------------- cost of the clips played
# The CNN a deployed policy needs. A full-frame store's cell is a cell of the whole frame's inception5b map, whose
# receptive field covers most of the 224 x 224 frame: one cell cannot be computed for a 49th of the network
# (a single cell costs 56-86 % of a frame's FLOPs), and the channel-group periphery is computed from every cell.
# So on a full-frame store every policy pays the whole CNN for every frame it watched, in cube and glimpse mode
# alike. A crop-cell store's cell depends only on its own crop, so a policy pays, per frame watched, the glance
# (its periphery, computed from pixels) and one crop per distinct cell it looked at (all 49 if it reads the cube).
# Frames watched: those its predictions used (a glimpse budget or an early exit stops short of T).
def reads_cube(policy: Any, env: Any) -> bool:
    """Whether the policy reads every cell of the frames (the ``cube``) rather than its glimpses only."""
    cfg = getattr(getattr(policy, "network", None), "config", None)
    if cfg is not None:
        return bool(cfg.reads_cube)
    # Other policies (Stable-Baselines3's) read every observation entry they are given.
    return "cube" in env.single_observation_space.spaces


def reads_periphery(policy: Any, env: Any) -> bool:
    """Whether the policy reads the ``periphery`` observation (where the env serves one)."""
    if "periphery" not in env.single_observation_space.spaces:
        return False
    cfg = getattr(getattr(policy, "network", None), "config", None)
    if cfg is not None:
        return bool(cfg.periphery_dim)
    return True  # other policies (Stable-Baselines3's) read every observation entry they are given


def values_read(locations: np.ndarray, frames_watched: np.ndarray, rules: Any, cube: bool,
                periphery: bool) -> np.ndarray:
    """Feature values each clip's policy read, (N,): its distinct cells x D, plus K*K x k per frame watched for
    the periphery (2k with its motion periphery). ``locations`` (N, L): the cells looked at, -1 at steps not
    taken; ``frames_watched`` (N,)."""
    extra = np.asarray(frames_watched) * rules.num_cells * rules.periphery_values if periphery else 0
    return cells_read(locations, frames_watched, rules, cube) * rules.feature_dim + extra


def cells_read(locations: np.ndarray, frames_watched: np.ndarray, rules: Any, cube: bool) -> np.ndarray:
    """Distinct (frame, cell) pairs each clip's policy read, (N,): the cells it looked at (``locations`` (N, L),
    -1 at steps not taken), or every cell of each frame watched where it reads the cube."""
    if cube:
        return (np.asarray(frames_watched) * rules.num_cells).astype(np.float64)
    frames = np.asarray(rules.frame_of(np.arange(locations.shape[1])))
    pairs = np.where(locations >= 0, frames[None, :] * rules.num_cells + locations, -1)
    return np.array([len(np.unique(row[row >= 0])) for row in pairs], dtype=np.float64)


@dataclass(frozen=True)
class CnnCost:
    """What the store's features cost to compute: ``cells`` ("full" or "crop"), FLOPs of a whole frame's cells,
    of one cell alone (a full-frame cell needs the whole frame), and of the glance (the periphery computed from
    pixels; crop-cell stores only)."""

    cells: str
    flops_per_frame: float
    flops_per_cell: float
    glance_flops_per_frame: float

    @classmethod
    def of(cls, source: Any) -> CnnCost:
        """From the store's ``meta.json`` (GoogLeNet on the whole frame for synthetic data and older stores)."""
        store = getattr(source, "store", None)
        meta = store.meta if store is not None else {}
        if meta.get("cells") == "crop":
            glance = (meta.get("periphery") or {}).get("flops_per_frame") or 0.0
            return cls("crop", float(meta["cnn_flops_per_frame"]), float(meta["cnn_flops_per_cell"]), float(glance))
        frame = float(meta.get("cnn_flops_per_frame") or googlenet_flops_per_frame(_input_size(source)))
        return cls("full", frame, frame, 0.0)

    def per_clip(self, result: ClipEpisodes, rules: Any, cube: bool, periphery: bool) -> np.ndarray:
        """CNN FLOPs each clip's policy needed, (N,) (see the section comment)."""
        if self.cells == "full":
            return result.frames_watched * self.flops_per_frame
        glance = result.frames_watched * self.glance_flops_per_frame if periphery else 0.0
        return cells_read(result.locations, result.frames_watched, rules, cube) * self.flops_per_cell + glance


def cost_metrics(result: ClipEpisodes, source: Any, rules: Any, cube: bool, periphery: bool) -> dict[str, float]:
    """Per-clip cost entries of an evaluation: frames watched, values and bytes read (as the float16 store holds
    them), the share of the watched cubes they are, and the CNN FLOPs the policy needed (:class:`CnnCost`) against
    the whole CNN on all T frames (``cnn_flops_full_clip``), the cost of a full-frame pipeline."""
    from envs.store import FEATURE_DTYPE

    values = values_read(result.locations, result.frames_watched, rules, cube, periphery)
    frames = result.frames_watched
    cost = CnnCost.of(source)
    cnn = cost.per_clip(result, rules, cube, periphery)
    full_frame = float(googlenet_flops_per_frame(_input_size(source)))
    full_clip = rules.frames * full_frame
    return {
        "cnn_cells": cost.cells,
        "frames_watched_per_clip": float(frames.mean()),
        "feature_values_read_per_clip": float(values.mean()),
        "share_of_cube_read": float((values / (frames * rules.num_cells * rules.feature_dim)).mean()),
        "store_bytes_read_per_clip": float(values.mean()) * np.dtype(FEATURE_DTYPE).itemsize,
        "cnn_flops_per_frame": cost.flops_per_frame,
        "cnn_flops_per_clip": float(cnn.mean()),
        "cnn_flops_full_clip": full_clip,
        "cnn_share_of_full": float(cnn.mean()) / full_clip,
    }


def measure_cost(env: Any, policy: Any, clip: int, seed: int = 0, repeats: int = 3) -> tuple[float, float]:
    """(attention-model FLOPs of one clip, median latency in ms of one clip alone: policy + env).

    ``env`` is a vector env with one sub-env. FLOPs are counted over the policy's ``act`` calls only (the env is
    numpy); the latency is the median of ``repeats`` timed episodes after one warm-up.
    """
    options = {"video_index": np.array([clip])}

    def episode(on_act: Callable[[Callable[[], Any]], Any]) -> None:
        obs, _ = env.reset(seed=seed, options=options)
        policy.reset(1)
        while True:
            core = env.next_core_mask() if policy.needs_core_mask else None
            action = on_act(lambda obs=obs, core=core: policy.act(obs, True, core)[0])
            obs, _, terminated, truncated, _ = env.step(action)
            if bool(np.any(terminated | truncated)):
                return

    total = [0]

    def counted(act: Callable[[], Any]) -> Any:
        with counting_flops() as counter:
            action = act()
        total[0] += counter.get_total_flops()
        return action

    episode(counted)
    episode(lambda act: act())  # warm-up with the fast kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        episode(lambda act: act())
        times.append(time.perf_counter() - start)
    return float(total[0]), 1000.0 * float(np.median(times))


def score(result: ClipEpisodes, source: Any, rules: Any, cube: bool,
          ground_truth: Mapping[str, Iterable[str]] | None = None,
          periphery: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, details) of the clips played: accuracy, top-5, mAP / Hit@3, focus, glimpses, cells and values read,
    reward, the cost account (:func:`cost_metrics`).

    :param source: the env's feature source; ``rules``: its episode rules (``env.unwrapped.source / .rules``).
    :param cube: whether the policy read whole frames (see :func:`reads_cube`).
    :param periphery: whether it read the periphery (see :func:`reads_periphery`).
    :param ground_truth: ActivityNet-style ``video_id -> label names`` to score mAP / Hit@3 against (default:
        the source's labels of the evaluated clips).
    :return: details hold ``per_class`` rows, the ``confusion_matrix``, the ``activitynet_results`` (official
        results JSON of the predictions), ``correct`` (N,) and ``mean_ap_classes``.
    """
    from envs.reward import paper_reward

    names, c = list(source.class_names), len(source.class_names)
    preds, correct = result.predictions, result.correct
    n, steps = result.step_predictions.shape
    taken = result.step_mask
    step_ok = source.is_correct(np.repeat(result.clips, steps), result.step_predictions.reshape(-1)).reshape(n, steps)
    step_ok &= taken
    last_ok = result.last_correct
    # eq. 7 over the whole episode length; a clip that stopped early committed its last prediction to the rest
    length = rules.episode_length
    n_pos = step_ok.sum(1) + (length - result.lengths) * last_ok
    reward = paper_reward(n_pos, length - n_pos, rules.eta, rules.reward_positive, rules.reward_negative)
    results = activitynet_results(result.video_ids, result.class_scores, names)
    if ground_truth is None:
        ground_truth = {v: [names[k] for k in sorted(s)] for v, s in zip(result.video_ids, result.label_sets,
                                                                          strict=True)}
    anet = activitynet_classification(ground_truth, results["results"], top_k=3)
    read = cells_read(result.locations, result.frames_watched, rules, cube)
    metrics: dict[str, Any] = {
        "accuracy": float(correct.mean()),
        "top5_accuracy": float(topk_correct(result.class_scores, result.label_sets, 5).mean()),
        "mean_ap": anet.mean_ap,
        "hit_at_3": anet.hit_at_k,
        "focus_accuracy": float(np.nanmean(result.on_core)) if np.isfinite(result.on_core).any() else None,
        "glimpses_per_clip": float(result.lengths.mean()),
        "cells_read_per_clip": float(read.mean()),
        **cost_metrics(result, source, rules, cube, periphery),
        "paper_reward": float(np.mean(reward)),
        "mean_return": float(result.returns.mean()),
        "step_accuracy": float(step_ok.sum() / taken.sum()),
        "last_step_accuracy": float(last_ok.mean()),
        "clips_per_second": len(preds) / max(result.seconds, 1e-9),
        "n_clips": int(n),
    }
    acc, counts = per_class_accuracy(result.labels, correct, c)
    per_class = [{"class": names[k], "clips": int(counts[k]), "accuracy": None if np.isnan(acc[k]) else float(acc[k]),
                  "average_precision": anet.average_precision.get(names[k])} for k in range(c)]
    cm = confusion_matrix(result.labels, preds, result.label_sets, c)
    details = {"per_class": per_class, "confusion_matrix": cm, "activitynet_results": results,
               "correct": correct, "mean_ap_classes": len(anet.average_precision)}
    return metrics, details


def _input_size(source: Any) -> int:
    """The CNN input size the store's features were made at (224 by default and for synthetic data)."""
    store = getattr(source, "store", None)
    size = store.meta.get("input_size", 224) if store is not None else 224
    return int(size[0] if isinstance(size, list | tuple) else size)
