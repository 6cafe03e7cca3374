"""Linear probes of feature stores: how much class information the cells hold, and whether attention can matter.

    python bench/bench_store_calibration.py data/rendered-marked-store data/rendered-moving-store [--split 1]

For each store, ridge classifiers (``agents.evaluation.probes``) fitted on the train subset score the test
subset from one summary per clip: the mean of all cells (attention-free pooling), the mean of the
ground-truth core cells (``core.npy``: a policy that always looks at the actor), one core cell per frame
(the ``oracle`` baseline's input) and one random cell per frame. "oracle - mean" is how much attention can
gain on that store. Prints a markdown table (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.evaluation.probes import markdown_table, probe_store
from envs.store import StoreError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stores", nargs="+", metavar="STORE", help="feature store folders")
    parser.add_argument("--split", default=None, help="split of a multi-split store (HMDB-51 layout; default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cells and core cells drawn")
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the table here")
    args = parser.parse_args()
    results = []
    for store in args.stores:
        start = time.perf_counter()
        try:
            results.append(probe_store(store, args.split, args.seed))
        except (StoreError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{store}: probed in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    table = markdown_table(results)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
