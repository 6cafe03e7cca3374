"""``python -m agents.sweep``: the Ray Tune sweep's command line, whose home is :mod:`agents.training.sweep`
(also installed as ``glimpse-sweep``)."""

if __name__ == "__main__":
    from agents.training.sweep import console_main

    raise SystemExit(console_main())
