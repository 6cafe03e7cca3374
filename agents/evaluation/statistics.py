"""Multi-seed statistics for ``evaluate.py --compare``: runs that differ only by seed form a group, and
each group gets its mean, interquartile mean (IQM) and 95 % stratified-bootstrap confidence intervals.

The aggregates and intervals are rliable's (Agarwal et al., "Deep RL at the edge of the statistical
precipice", NeurIPS 2021): ``metrics.aggregate_mean`` / ``aggregate_iqm`` and
``library.get_interval_estimates`` (percentile bootstrap over runs, stratified by task; here one task per
group: the env the group was trained on). A fixed ``seed`` makes the intervals reproducible. rliable comes
with the ``[ray]`` extra; it is imported only when groups are computed.

Two runs are in the same group when their ``config.json`` agree on everything that shapes training except
the seed: :data:`GROUP_FIELDS`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: config.json fields that must be equal for runs to be seeds of one group
GROUP_FIELDS = ("env_id", "algo", "env_kwargs", "hyperparams", "total_timesteps")
CONFIDENCE = 0.95
BOOTSTRAP_REPS = 5000
RLIABLE_PIP = "pip install 'glimpse-attention[ray]'  (or: pip install 'rliable>=1.2')"


class StatisticsUnavailable(RuntimeError):
    """rliable is not installed."""


@dataclass
class SeedGroup:
    """Runs that differ only by seed, and their statistics of ``metric`` (fractions, as in the leaderboard)."""

    label: str
    key: str
    runs: list[str]
    seeds: list[Any]
    scores: list[float]
    metric: str = "accuracy"
    mean: float = float("nan")
    iqm: float = float("nan")
    mean_ci: tuple[float, float] | None = None  # None for n = 1
    iqm_ci: tuple[float, float] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.scores)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "n": self.n, "metric": self.metric, "mean": self.mean, "iqm": self.iqm,
                "mean_ci95": list(self.mean_ci) if self.mean_ci else None,
                "iqm_ci95": list(self.iqm_ci) if self.iqm_ci else None, "seeds": self.seeds, "scores": self.scores,
                "runs": self.runs, "settings": self.settings}


def group_key(config: dict[str, Any]) -> str:
    """What a run's seeds share, as canonical JSON."""
    return json.dumps({k: config.get(k) for k in GROUP_FIELDS}, sort_keys=True, default=str)


def _labels(groups: list[SeedGroup]) -> None:
    """``algo (obs)``; where two groups would read the same, the settings that tell them apart are added."""
    base = {}
    for g in groups:
        obs = (g.settings.get("env_kwargs") or {}).get("observation_mode", "cube")
        base[g.key] = f"{g.settings['algo']} ({obs})"
    counts: dict[str, int] = {}
    for label in base.values():
        counts[label] = counts.get(label, 0) + 1
    for g in groups:
        label = base[g.key]
        if counts[label] > 1:
            kwargs = {k: v for k, v in (g.settings.get("env_kwargs") or {}).items() if k != "observation_mode"}
            extra = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
            digest = hashlib.sha1(g.key.encode()).hexdigest()[:6]
            label = f"{label} {extra} [{digest}]".replace("  ", " ")
        g.label = label


def seed_groups(runs: Sequence[tuple[Path, dict[str, Any]]], metric: str = "accuracy") -> list[SeedGroup]:
    """Group ``(run folder, leaderboard row)`` pairs of evaluated runs by :func:`group_key` (no statistics yet)."""
    groups: dict[str, SeedGroup] = {}
    for folder, row in runs:
        value = row.get(metric)
        if row.get("status") != "ok" or not isinstance(value, int | float):
            continue
        config = json.loads((Path(folder) / "config.json").read_text())
        key = group_key(config)
        if key not in groups:
            groups[key] = SeedGroup(label="", key=key, runs=[], seeds=[], scores=[], metric=metric,
                                    settings={k: config.get(k) for k in GROUP_FIELDS})
        group = groups[key]
        group.runs.append(Path(folder).name)
        group.seeds.append(config.get("seed"))
        group.scores.append(float(value))
    out = list(groups.values())
    _labels(out)
    return out


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError:
        raise StatisticsUnavailable(f"seed statistics need rliable; {RLIABLE_PIP}") from None
    return library, metrics


def estimate(groups: list[SeedGroup], seed: int = 0, reps: int = BOOTSTRAP_REPS) -> list[SeedGroup]:
    """Fill in mean, IQM and (for n >= 2) their 95 % stratified-bootstrap intervals; reproducible for ``seed``."""
    library, metrics = _rliable()

    def aggregates(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(scores), metrics.aggregate_iqm(scores)])

    for group in groups:
        scores = np.asarray(group.scores, dtype=float).reshape(-1, 1)  # (runs, tasks = 1)
        group.mean, group.iqm = (float(v) for v in aggregates(scores))
        if group.n < 2:
            continue
        # Seeded per group, so an interval does not depend on which other groups are compared. rliable 1.2's
        # StratifiedBootstrap draws its resamples from numpy's global generator (update_indices calls
        # np.random.choice) whatever random_state says, so that generator is seeded too, then put back.
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            with warnings.catch_warnings():  # arch deprecates random_state, which rliable 1.2 still passes
                warnings.simplefilter("ignore", FutureWarning)
                _, intervals = library.get_interval_estimates(
                    {group.key: scores}, aggregates, reps=reps, confidence_interval_size=CONFIDENCE,
                    random_state=np.random.RandomState(seed))
        finally:
            np.random.set_state(saved)
        low, high = intervals[group.key]
        group.mean_ci = (float(low[0]), float(high[0]))
        group.iqm_ci = (float(low[1]), float(high[1]))
    return sorted(groups, key=lambda g: (-g.iqm, g.label))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _ci(interval: tuple[float, float] | None) -> str:
    return f"[{_pct(interval[0])}, {_pct(interval[1])}]" if interval else "n=1, no interval"


def markdown(groups: Sequence[SeedGroup]) -> str:
    """The seed-group table of the leaderboard."""
    if not groups:
        return ""
    metric = groups[0].metric
    lines = [f"Seed groups: runs that differ only by seed; {metric} mean, IQM and {CONFIDENCE:.0%} stratified-"
             f"bootstrap confidence intervals (rliable, {BOOTSTRAP_REPS} resamples).", "",
             "| group | n | seeds | mean | mean 95% CI | IQM | IQM 95% CI |", "|---|---:|---|---:|---|---:|---|"]
    for g in groups:
        seeds = ", ".join(str(s) for s in g.seeds)
        lines.append(f"| {g.label} | {g.n} | {seeds} | {_pct(g.mean)} | {_ci(g.mean_ci)} | {_pct(g.iqm)} | "
                     f"{_ci(g.iqm_ci)} |")
    return "\n".join(lines) + "\n"


def write_interval_figure(groups: Sequence[SeedGroup], path: Path) -> Path:
    """Mean and IQM of every group with their intervals, one row per group (n=1: a point, no bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(groups) + 1.6), sharey=True, squeeze=False)
    y = np.arange(len(groups))[::-1]
    for ax, name, value, interval in ((axes[0][0], "mean", "mean", "mean_ci"), (axes[0][1], "IQM", "iqm", "iqm_ci")):
        for yi, g in zip(y, groups, strict=True):
            point = 100 * getattr(g, value)
            ci = getattr(g, interval)
            if ci:
                ax.plot([100 * ci[0], 100 * ci[1]], [yi, yi], color="tab:blue", linewidth=6, alpha=0.45,
                        solid_capstyle="butt")
            ax.plot([point], [yi], "o", color="black", markersize=4)
        ax.set_title(f"{name} {groups[0].metric if groups else ''} ({CONFIDENCE:.0%} CI)")
        ax.set_xlabel(f"{groups[0].metric if groups else 'score'} (%)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.6, len(groups) - 0.4)
    axes[0][0].set_yticks(y, [f"{g.label}  n={g.n}" for g in groups])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_seed_statistics(runs: Sequence[tuple[Path, dict[str, Any]]], out: Path, metric: str = "accuracy",
                          seed: int = 0) -> list[SeedGroup]:
    """Groups + statistics -> ``seed_groups.json``, ``seed_intervals.png`` in ``out``; returns the groups."""
    groups = estimate(seed_groups(runs, metric), seed=seed)
    (out / "seed_groups.json").write_text(json.dumps([g.to_json() for g in groups], indent=1) + "\n")
    if groups:
        write_interval_figure(groups, out / "seed_intervals.png")
    return groups


def leaderboard_section(runs: Sequence[tuple[Path, dict[str, Any]]], out: Path, metric: str = "accuracy",
                        seed: int = 0) -> str:
    """The markdown that ``evaluate.py --compare`` appends to ``leaderboard.md`` (files written to ``out``);
    without rliable, an empty section and a one-line note on stderr."""
    import sys

    try:
        groups = write_seed_statistics(runs, out, metric, seed)
    except StatisticsUnavailable as exc:
        print(f"evaluate: note: no seed statistics: {exc}", file=sys.stderr)
        return ""
    if not groups:
        return ""
    return f"\n{markdown(groups)}\n![seed groups: {metric} intervals](seed_intervals.png)\n"
