"""Linear probes of a feature store: how much class information its cells hold, and whether attention can matter.

A probe is a ridge classifier (one-vs-rest least squares on standardised inputs, the penalty chosen by
5-fold cross-validation on the training subset) fitted on one summary vector per clip and scored on the
test subset. The summaries:

- ``mean``: the clip average of the mean of all K x K cells (what attention-free pooling sees);
- ``oracle``: the clip average of the mean of each frame's ground-truth core cells (``core.npy``; frames
  without a core are skipped), what a policy that always looks at the actor could see;
- ``oracle_glimpse``: one core cell per frame, drawn at random among the frame's core cells (the
  ``oracle`` baseline's input);
- ``random``: one random cell per frame (what glimpses that ignore the content see);
- ``core_track``: not features but where the core is: the (row, column) centre of each frame's core cells,
  frame by frame (2T values). A class made by *how the actor moves* (the rendered benchmark's motion
  variant) is invisible to every clip average above and plain in this one: there, attention must follow
  the actor and remember where it went.

``oracle - mean`` well above zero says that attention can pay on this store; ``random`` near ``mean`` or
below says that a glimpse must be chosen, not drawn. numpy only; ``bench/bench_store_calibration.py`` is the
command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.sources import StoreSource
from envs.store import UNUSED, FeatureStore

SUMMARIES = ("mean", "oracle", "oracle_glimpse", "random", "core_track")
PENALTIES = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
FOLDS = 5


@dataclass
class ProbeResult:
    """Test accuracy of each summary's probe (None: not defined on this store, e.g. no core), and chance."""

    store: str
    split: str | None
    train_clips: int
    test_clips: int
    num_classes: int
    accuracy: dict[str, float | None]

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    @property
    def attention_gain(self) -> float | None:
        """Oracle-cell probe minus mean-of-cells probe, in accuracy points (None without a core)."""
        oracle, mean = self.accuracy.get("oracle"), self.accuracy.get("mean")
        return None if oracle is None or mean is None else oracle - mean


def clip_summaries(source: StoreSource, seed: int = 0) -> dict[str, np.ndarray]:
    """Every clip's summary vectors, float32 (N, D) per name in ``SUMMARIES`` (core ones only with a core)."""
    rng = np.random.default_rng(seed)
    n, t, cells = source.num_clips, source.frames, source.grid**2
    out = {name: np.zeros((n, source.feature_dim), np.float32) for name in SUMMARIES}
    out["core_track"] = np.zeros((n, 2 * t), np.float32)
    grid_rows, grid_cols = np.divmod(np.arange(cells), source.grid)
    frames = np.arange(t)
    for clip in range(n):
        cube = source.cube(np.full(t, clip), frames).reshape(t, cells, -1).astype(np.float32)
        out["mean"][clip] = cube.mean(axis=(0, 1))
        out["random"][clip] = cube[frames, rng.integers(cells, size=t)].mean(axis=0)
        core = source.core_mask(np.full(t, clip), frames)
        if core is None:
            continue
        seen = core.any(axis=1)
        if not seen.any():  # no actor in any frame: the clip average of all cells stands in
            out["oracle"][clip] = out["oracle_glimpse"][clip] = out["mean"][clip]
            continue
        weights = core[seen] / core[seen].sum(axis=1, keepdims=True)
        centre = np.full((t, 2), (source.grid - 1) / 2, np.float32)  # frames without a core: the frame's centre
        centre[seen] = np.stack([weights @ grid_rows, weights @ grid_cols], axis=-1)
        out["core_track"][clip] = centre.reshape(-1)
        out["oracle"][clip] = np.einsum("tc,tcd->d", weights, cube[seen]) / seen.sum()
        picks = [rng.choice(np.flatnonzero(row)) for row in core[seen]]
        out["oracle_glimpse"][clip] = cube[np.flatnonzero(seen), picks].mean(axis=0)
    if not source.has_core:
        del out["oracle"], out["oracle_glimpse"], out["core_track"]
    return out


def _fit_ridge(x: np.ndarray, targets: np.ndarray, penalty: float) -> np.ndarray:
    """Weights (D + 1, C) of ridge regression onto one-hot ``targets``, in the dual (N << D here)."""
    x1 = np.hstack([x, np.ones((len(x), 1), np.float32)])
    gram = x1 @ x1.T
    alpha = np.linalg.solve(gram + penalty * len(x) * np.eye(len(x)), targets)
    return x1.T @ alpha


def _predict(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (np.hstack([x, np.ones((len(x), 1), np.float32)]) @ weights).argmax(axis=1)


def ridge_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, test_labels: list[frozenset[int]], classes: int
) -> float:
    """Test accuracy (prediction among the clip's labels) of a ridge probe on standardised inputs."""
    mu, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    targets = np.eye(classes, dtype=np.float64)[y_train]
    folds = np.arange(len(x_train)) % FOLDS
    np.random.default_rng(0).shuffle(folds)

    def cv_accuracy(penalty: float) -> float:
        right = 0
        for k in range(FOLDS):
            fit, held = folds != k, folds == k
            weights = _fit_ridge(x_train[fit], targets[fit], penalty)
            right += int((_predict(weights, x_train[held]) == y_train[held]).sum())
        return right / len(x_train)

    best = max(PENALTIES, key=cv_accuracy)
    predictions = _predict(_fit_ridge(x_train, targets, best), x_test)
    return float(np.mean([int(p) in labels for p, labels in zip(predictions, test_labels, strict=True)]))


def probe_store(path: str | Path, split: str | None = None, seed: int = 0) -> ProbeResult:
    """Fit and score every probe on the store at ``path`` (train: its first subset; test: its second)."""
    store = FeatureStore(path)
    subsets = [s for s in store.subsets if s != UNUSED]
    if len(subsets) < 2:
        raise ValueError(
            f"the store at '{store.path}' has one subset ({subsets}); a probe needs a train and a test subset"
        )
    train, test = (StoreSource(store, subset, split) for subset in subsets[:2])
    x_train, x_test = clip_summaries(train, seed), clip_summaries(test, seed + 1)
    y_train = train.labels(np.arange(train.num_clips))
    test_labels = [test.label_set(i) for i in range(test.num_clips)]
    accuracy: dict[str, float | None] = {
        name: ridge_probe(x_train[name], y_train, x_test[name], test_labels, train.num_classes) if name in x_train
        else None
        for name in SUMMARIES
    }
    return ProbeResult(str(store.path), split, train.num_clips, test.num_clips, train.num_classes, accuracy)


def markdown_table(results: list[ProbeResult]) -> str:
    """The probes of several stores as one markdown table."""
    head = "| store | train / test clips | classes (chance) | " + " | ".join(SUMMARIES) + " | oracle - mean |"
    rule = "|---|---:|---:|" + "---:|" * (len(SUMMARIES) + 1)
    rows = []
    for r in results:
        cells = ["-" if r.accuracy[name] is None else f"{r.accuracy[name]:.3f}" for name in SUMMARIES]
        gain = "-" if r.attention_gain is None else f"{100 * r.attention_gain:+.1f} pts"
        rows.append(f"| {r.store} | {r.train_clips} / {r.test_clips} | {r.num_classes} ({r.chance:.3f}) | "
                    + " | ".join(cells) + f" | {gain} |")
    return "\n".join([head, rule, *rows])
