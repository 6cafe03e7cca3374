"""Agents, training and evaluation for the glimpse envs, by layer:

- ``agents.common``: infrastructure shared with ``feature_extractors`` (devices, Ray, child processes,
  command-line checks); it loads no policy nor network;
- ``agents.algorithms``: the learning algorithms with their network and losses (torch): the glimpse network,
  ``reinforce`` (the paper's agent), ``lstm_ppo``, the supervised baselines, the SB3 / sb3-contrib adapter,
  and the uniform :class:`Policy` interface;
- ``agents.training``: ``--algo`` names, hyperparameters, run folders, the training session, the
  ``train_agent.py`` command line (``agents.training.cli``) and sweeps on Ray Tune (``agents.training.sweep``);
- ``agents.evaluation``: how a policy is scored, reports, leaderboards, seed statistics and the
  ``evaluate.py`` command line (``agents.evaluation.cli``).

Public names, loaded on first use (so that ``import agents.common.cluster`` stays light):
:class:`Policy`, :func:`load_policy` (the policy of any run folder), :func:`make_env_from_run`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.algorithms.policy import Policy
    from agents.training.runs import load_policy, make_env_from_run

__all__ = ["Policy", "load_policy", "make_env_from_run"]

_HOMES = {"Policy": "agents.algorithms.policy", "load_policy": "agents.training.runs",
          "make_env_from_run": "agents.training.runs"}


def __getattr__(name: str) -> Any:
    """The public names, imported from their modules on first access (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
