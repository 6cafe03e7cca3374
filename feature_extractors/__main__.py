"""``python -m feature_extractors``: see ``cli.py``."""

from feature_extractors.cli import main

raise SystemExit(main())
