"""Train one algorithm on one glimpse env: ``python train_agent.py --help``.

The command line lives in :mod:`agents.training.cli` (also installed as ``glimpse-train``).
"""

import sys

from agents.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
