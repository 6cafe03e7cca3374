"""Agents and learners for the glimpse envs (torch).

- ``agents.training.registry``: every ``--algo`` name (our agents and the Stable-Baselines3 ones) -> its builder;
- ``agents.algorithms.network``: the glimpse network shared by our agents;
- ``agents.algorithms.reinforce`` (the paper's agent), ``agents.algorithms.lstm_ppo``,
  ``agents.algorithms.supervised`` (baselines), ``agents.algorithms.sb3`` (SB3 / sb3-contrib adapter and
  features extractor);
- ``agents.algorithms.policy``: the uniform :class:`Policy` interface; :func:`load_policy` reads any run folder.
"""

from agents.algorithms.policy import Policy
from agents.training.runs import load_policy, make_env_from_run

__all__ = ["Policy", "load_policy", "make_env_from_run"]
