"""Infrastructure shared by training, evaluation and feature extraction; imports no policy nor network.

- :mod:`~agents.common.devices`: torch device checks and CPU threads;
- :mod:`~agents.common.cluster`: Ray sessions (local or a cluster's head);
- :mod:`~agents.common.children`: child processes that die with their command;
- :mod:`~agents.common.checks`: one-line checks of command-line numbers.
"""
