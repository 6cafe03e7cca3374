"""Score, compare and show trained attention policies: ``python evaluate.py --help``.

The command line lives in :mod:`agents.evaluation.cli` (also installed as ``glimpse-evaluate``).
"""

import sys

from agents.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
