"""The learning algorithms with their network and losses (torch).

- :mod:`~agents.algorithms.network`: the glimpse network shared by our agents;
- :mod:`~agents.algorithms.policy`: the uniform :class:`~agents.algorithms.policy.Policy` interface;
- :mod:`~agents.algorithms.rollout`: whole-episode collection in lockstep batches;
- :mod:`~agents.algorithms.losses`: the loss terms;
- :mod:`~agents.algorithms.base`: the algorithm interface and the episode-based learners' common loop;
- :mod:`~agents.algorithms.reinforce` (the paper's agent), :mod:`~agents.algorithms.lstm_ppo`,
  :mod:`~agents.algorithms.supervised` (baselines), :mod:`~agents.algorithms.sb3` (SB3 / sb3-contrib adapter).
"""
