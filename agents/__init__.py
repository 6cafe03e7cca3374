"""Agents and learners for the glimpse envs (torch).

- ``agents.registry``: every ``--algo`` name (our agents and the Stable-Baselines3 ones) -> its builder;
- ``agents.network``: the glimpse network shared by our agents;
- ``agents.reinforce`` (the paper's agent), ``agents.lstm_ppo``, ``agents.supervised`` (baselines),
  ``agents.sb3`` (SB3 / sb3-contrib adapter and features extractor);
- ``agents.policy``: the uniform :class:`Policy` interface; :func:`load_policy` reads any run folder.
"""

from agents.policy import Policy
from agents.runs import load_policy, make_env_from_run

__all__ = ["Policy", "load_policy", "make_env_from_run"]
