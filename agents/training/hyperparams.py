"""Hyperparameter files: one yaml per algorithm in ``agents/training/hyperparams/``, keyed by env id, like rl_zoo3's.

Each file has a ``default`` entry and optional per-env entries; an env's hyperparameters are ``default``
updated by its own entry (nested mappings such as ``network`` and ``policy_kwargs`` are merged key by key).
A rung of the synthetic ladder (``envs/ladder.py``) is ``default``, then the top rung's entry
(``SyntheticGlimpse-v0``), then its own.
A user's ``--hyperparams`` file is applied on top, in either of two layouts:

- keyed like ours (top-level keys are env ids and/or ``default``): ``default`` then the env's entry apply;
- flat: a mapping of hyperparameters that applies to any env.

Unknown keys, values of the wrong type and values outside a key's choices are errors that name the key and
what it accepts.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from envs.build import accepts_type, describe_type
from envs.ladder import lineage

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
DEFAULT_KEY = "default"


class HyperparamError(ValueError):
    """A hyperparameter file is missing, malformed or has unknown keys."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``; nested mappings merge key by key (a None override replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path, allow_empty: bool = True) -> dict[str, Any]:
    """A yaml file whose top level is a mapping (an empty file is an empty mapping where ``allow_empty``)."""
    if path.is_dir():
        raise HyperparamError(f"hyperparameter file {path} is a directory; give a yaml file of hyperparameters")
    if not path.is_file():
        raise HyperparamError(f"hyperparameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HyperparamError(f"hyperparameter file {path} is not valid yaml: {exc}") from exc
    if data is None:
        if not allow_empty:
            raise HyperparamError(
                f"hyperparameter file {path} is empty: write the hyperparameters to override in it (e.g. "
                "learning_rate: 0.001), or leave the file out")
        return {}
    if not isinstance(data, dict):
        raise HyperparamError(f"hyperparameter file {path} must hold a mapping, not {type(data).__name__}")
    return data


def _entry(data: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise HyperparamError(f"entry {key!r} of {path} must be a mapping of hyperparameters")
    return dict(value)


def is_keyed(data: Mapping[str, Any], env_ids: Iterable[str]) -> bool:
    """Whether a hyperparameter mapping is keyed by env id (ours) rather than flat."""
    known = set(env_ids) | {DEFAULT_KEY}
    return any(key in known for key in data)


def for_env(data: Mapping[str, Any], env_id: str, path: Path) -> dict[str, Any]:
    """``default`` merged with the entries of ``env_id``'s lineage (a ladder rung: the top rung's, then its own)."""
    params = _entry(data, DEFAULT_KEY, path)
    for key in lineage(env_id):
        params = deep_merge(params, _entry(data, key, path))
    return params


def load_hyperparams(
    file_name: str, env_id: str, env_ids: Iterable[str], user_file: Path | None = None
) -> dict[str, Any]:
    """The shipped defaults of ``file_name`` for ``env_id``, updated by ``user_file`` (either layout)."""
    path = HYPERPARAMS_DIR / file_name
    params = for_env(read_yaml(path), env_id, path)
    if user_file is not None:
        user = read_yaml(user_file, allow_empty=False)  # an empty file is a mistake, not "no overrides"
        override = for_env(user, env_id, user_file) if is_keyed(user, env_ids) else user
        params = deep_merge(params, override)
    return params


def check_keys(given: Iterable[str], allowed: Iterable[str], where: str) -> None:
    """Raise :class:`HyperparamError` naming every unknown key and the valid ones."""
    allowed = sorted(set(allowed))
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise HyperparamError(
            f"unknown hyperparameter(s) {', '.join(unknown)} in {where}; valid keys: {', '.join(allowed)}"
        )


def check_types(params: Mapping[str, Any], cls: type, where: str) -> None:
    """Raise :class:`HyperparamError` for a value that does not fit the type of ``cls``'s field of that name
    (a dataclass), or lies outside ``cls.CHOICES[key]`` where a key has a fixed set of values."""
    hints = typing.get_type_hints(cls)
    choices: Mapping[str, tuple[str, ...]] = getattr(cls, "CHOICES", {})
    for key, value in params.items():
        if key in choices and value not in choices[key]:
            raise HyperparamError(
                f"hyperparameter {key}: {value!r} in {where} is not allowed; allowed values: {', '.join(choices[key])}"
            )
        if key in hints and not accepts_type(hints[key], value):
            raise HyperparamError(
                f"hyperparameter {key}: {value!r} in {where} must be {describe_type(hints[key])}"
            )
