"""``python -m feature_extractors``: see ``cli.py``."""

from feature_extractors.cli import console_main

raise SystemExit(console_main())
