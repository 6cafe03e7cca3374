"""Turn an environment's keyword arguments into a feature source and episode rules (one place)."""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

import numpy as np

from envs.dynamics import OBSERVATION_DTYPES, EpisodeRules
from envs.periphery import check_periphery_dim, default_periphery_dim
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


def accepts_type(kind: Any, value: Any) -> bool:
    """Whether ``value`` fits the annotation ``kind`` (ints for floats; bools never count as numbers). The one
    type rule for user-given values: env arguments here, hyperparameters in ``agents.training.hyperparams``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(accepts_type(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is Any:
        return True
    if isinstance(value, bool | np.bool_):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float | np.integer | np.floating)
    if kind is int:
        return isinstance(value, int | np.integer)
    return isinstance(value, origin or kind)


def describe_type(kind: Any) -> str:
    """``int | None`` -> "an int or None", for error messages."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(describe_type(k) for k in typing.get_args(kind))
    if kind is type(None):
        return "None"
    name = getattr(typing.get_origin(kind) or kind, "__name__", str(kind))
    return {"PathLike": "a path"}.get(name, f"{'an' if name[0] in 'aeiou' else 'a'} {name}")


def _argument_types() -> dict[str, tuple[Any, Any]]:
    """Every env keyword argument -> (its annotated type, an example value), from the constructors' own
    annotations: :func:`build`, :class:`EpisodeRules`, :class:`SyntheticConfig`."""
    out: dict[str, tuple[Any, Any]] = {}
    for owner in (SyntheticConfig, EpisodeRules):
        hints = typing.get_type_hints(owner)
        for f in fields(owner):
            example = None if f.default is MISSING else f.default
            out[f.name] = (hints[f.name], out[f.name][1] if example is None and f.name in out else example)
    hints = typing.get_type_hints(build)
    for name, param in inspect.signature(build).parameters.items():
        if param.kind is param.KEYWORD_ONLY or param.kind is param.POSITIONAL_OR_KEYWORD:
            example = param.default if param.default is not None else out.get(name, (None, None))[1]
            out[name] = (hints[name], example)
    return out


def check_argument_types(kwargs: dict[str, Any]) -> None:
    """``ValueError`` naming the first env argument whose value does not fit its annotated type (the one place
    env keyword arguments are type-checked; their values are checked where they are used). Not a TypeError:
    ``gymnasium.make`` would append its own text to that."""
    types_ = _argument_types()
    for key, value in kwargs.items():
        if key not in types_ or accepts_type(types_[key][0], value):
            continue
        kind, example = types_[key]
        hint = f" Pass e.g. {key}={example!r}." if example is not None else ""
        raise ValueError(f"env argument {key}={value!r} has the wrong type: {key} takes {describe_type(kind)}, got "
                        f"{describe_type(type(value))}.{hint}")


def build(
    dataset: str = "synthetic",
    data_root: str | os.PathLike[str] | None = None,
    subset: str = "train",
    split: int | str | None = None,
    frames: int | None = None,
    feature_dim: int | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | str | None = None,
    max_classes: int | None = None,
    periphery_dim: int | None = None,
    **options: Any,
) -> tuple[FeatureSource, EpisodeRules]:
    """Source and rules for the keyword arguments of any glimpse environment id.

    ``frames``, ``feature_dim`` and ``num_classes`` set the synthetic data's shape; for a store they
    are optional checks against what the store holds (after ``classes`` / ``max_classes``, which keep a
    subset of the store's classes, relabelled 0..n-1 in the store's order).
    """
    check_argument_types({"dataset": dataset, "data_root": data_root, "subset": subset, "split": split,
                          "frames": frames, "feature_dim": feature_dim, "num_classes": num_classes, **options})
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
        config = SyntheticConfig(**shape, **synthetic_kw)
        periphery_dim = resolve_periphery_dim(periphery_dim, rule_kw, config.feature_dim)
        source = SyntheticSource(config, subset, dtype, periphery_dim)
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
        if rule_kw.get("periphery_motion") and store.meta.get("cells") == "crop":
            # The motion periphery summarises every cell's change, so it needs all 49 crops of each frame: a
            # crop-cell policy reading it would pay the CNN that its cost account leaves out.
            raise ValueError(
                f"the store at '{store.path}' has crop cells (meta.json cells='crop'): its periphery is the pixel "
                "glance, and periphery_motion needs every cell of a frame; leave periphery_motion out, or use a "
                "full-frame store (--cells full)"
            )
        if dataset == "hmdb51" and split is None:
            split = 1
        if periphery_dim is None and store.periphery_dim is not None:
            wanted = rule_kw.get("observation_mode", "cube") == "glimpse" or rule_kw.get("periphery_motion", False)
            periphery_dim = store.periphery_dim if wanted else 0
        periphery_dim = resolve_periphery_dim(periphery_dim, rule_kw, store.feature_dim)
        source = StoreSource(store, subset, split, dtype, classes, max_classes, periphery_dim,
                             with_motion=bool(rule_kw.get("periphery_motion", False)))
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
        num_classes=source.num_classes, periphery_dim=periphery_dim, **rule_kw,
    )
    return source, rules


def resolve_periphery_dim(periphery_dim: Any, rule_kw: dict[str, Any], feature_dim: int) -> int:
    """The env argument ``periphery_dim`` (None: the default) as the k the episode rules take.

    Default: ``default_periphery_dim(D)`` in glimpse mode (one cell plus the periphery) and wherever
    ``periphery_motion`` asks for one, else 0 in cube mode (the cube already holds every cell); anything
    else is checked.
    """
    if periphery_dim is not None:
        return check_periphery_dim(periphery_dim, feature_dim)
    wanted = rule_kw.get("observation_mode", "cube") == "glimpse" or rule_kw.get("periphery_motion", False)
    return default_periphery_dim(feature_dim) if wanted else 0
