"""Training: algorithm names, hyperparameters, run folders, the training session, sweeps.

- :mod:`~agents.training.registry`: every ``--algo`` name -> its builder;
- :mod:`~agents.training.hyperparams`: the shipped ``hyperparams/<algo>.yml`` files and their checks;
- :mod:`~agents.training.envutil`: the batched env an algorithm trains and is evaluated on;
- :mod:`~agents.training.runs`: run folders (config, checkpoints, locks) and :func:`~agents.training.runs.load_policy`;
- :mod:`~agents.training.session`: the training loop around an algorithm (evaluations, checkpoints, logs);
- :mod:`~agents.training.sweep`: sweeps on Ray Tune, one run folder per trial.

Nothing is imported here, so that each module loads only what it needs.
"""
