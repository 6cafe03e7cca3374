"""Turn an environment's keyword arguments into a feature source and episode rules (one place)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from envs.dynamics import OBSERVATION_DTYPES, EpisodeRules
from envs.sources import (
    ACTIVITYNET_SUBSET_ALIASES,
    DATASETS,
    FeatureSource,
    StoreSource,
    resolve_data_root,
)
from envs.store import FeatureStore
from envs.synthetic import SyntheticConfig, SyntheticSource

SYNTHETIC_KNOBS = tuple(f.name for f in fields(SyntheticConfig))
SHAPE_KNOBS = ("frames", "grid", "feature_dim", "num_classes")
RULE_KNOBS = tuple(f.name for f in fields(EpisodeRules) if f.name not in SHAPE_KNOBS)


def build(
    dataset: str = "synthetic",
    data_root: str | None = None,
    subset: str = "train",
    split: int | str | None = None,
    frames: int | None = None,
    feature_dim: int | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | str | None = None,
    max_classes: int | None = None,
    **options: Any,
) -> tuple[FeatureSource, EpisodeRules]:
    """Source and rules for the keyword arguments of any glimpse environment id.

    ``frames``, ``feature_dim`` and ``num_classes`` set the synthetic data's shape; for a store they
    are optional checks against what the store holds (after ``classes`` / ``max_classes``, which keep a
    subset of the store's classes, relabelled 0..n-1 in the store's order).
    """
    unknown = sorted(set(options) - set(RULE_KNOBS) - set(SYNTHETIC_KNOBS))
    if unknown:
        raise TypeError(
            f"unknown argument(s) {', '.join(unknown)} for a glimpse environment; known: "
            + ", ".join(("data_root", "subset", "split", "frames", "feature_dim", "num_classes", "classes",
                         "max_classes", *RULE_KNOBS,
                         *SYNTHETIC_KNOBS))
        )
    rule_kw = {k: v for k, v in options.items() if k in RULE_KNOBS}
    synthetic_kw = {k: v for k, v in options.items() if k in SYNTHETIC_KNOBS}
    dtype = rule_kw.get("observation_dtype", "float32")
    if dtype not in OBSERVATION_DTYPES:
        raise ValueError(f"unknown observation_dtype {dtype!r}; choose one of {', '.join(OBSERVATION_DTYPES)}")
    source: FeatureSource
    if dataset == "synthetic":
        if data_root is not None or split is not None:
            raise ValueError("the synthetic benchmark takes neither data_root nor split (it needs no files)")
        if classes is not None or max_classes is not None:
            raise ValueError("classes / max_classes select classes of a feature store; the synthetic benchmark "
                             "takes num_classes=N instead")
        shape = {k: v for k, v in (("frames", frames), ("feature_dim", feature_dim), ("num_classes", num_classes))
                 if v is not None}
        source = SyntheticSource(SyntheticConfig(**shape, **synthetic_kw), subset, dtype)
    elif dataset in DATASETS:
        if synthetic_kw:
            raise TypeError(
                f"{', '.join(sorted(synthetic_kw))}: synthetic-data setting(s) do not apply to the "
                f"'{dataset}' dataset, which reads a feature store"
            )
        if dataset == "activitynet":
            subset = ACTIVITYNET_SUBSET_ALIASES.get(subset, subset)
        if dataset != "hmdb51" and split is not None:
            raise ValueError(f"split={split!r} applies to HMDB51Glimpse-v0 only; leave it out for '{dataset}'")
        store = FeatureStore(resolve_data_root(dataset, data_root))
        if dataset == "hmdb51" and split is None:
            split = 1
        source = StoreSource(store, subset, split, dtype, classes, max_classes)
        expected = {"frames": frames, "feature_dim": feature_dim, "num_classes": num_classes}
        actual = {"frames": source.frames, "feature_dim": source.feature_dim, "num_classes": source.num_classes}
        wrong = {k: v for k, v in expected.items() if v is not None and v != actual[k]}
        if wrong:
            raise ValueError(
                f"the store at '{store.path}' holds features with "
                + ", ".join(f"{k}={actual[k]}" for k in wrong)
                + " but the env was asked for "
                + ", ".join(f"{k}={v}" for k, v in wrong.items())
                + ". Drop those arguments (they default to the store's) or re-extract the store with them."
            )
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    rules = EpisodeRules(
        frames=source.frames, grid=source.grid, feature_dim=source.feature_dim,
        num_classes=source.num_classes, **rule_kw,
    )
    return source, rules
