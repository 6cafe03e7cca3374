"""``python -m feature_extractors``: see ``cli.py``."""

from agents.common.children import reap_children_on_exit
from feature_extractors.cli import main

reap_children_on_exit()  # decoding workers, the fork server and local Ray die with the command, even on kill -9
raise SystemExit(main())
