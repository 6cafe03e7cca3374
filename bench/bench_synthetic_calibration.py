"""Calibration of the default synthetic benchmark (DESIGN.md section 5).

    python bench/bench_synthetic_calibration.py [--data-seed N]

A nearest-class-mean classifier, fit on the train subset, classifies each test clip from the clip
average of its glimpsed cells under three fixed glimpse policies. Targets: oracle (one core cell per
frame) >= 90 %, average of all 49 cells <= 60 %, random glimpses <= 40 % (chance: 1 / 51 = 2 %).
"""

from __future__ import annotations

import argparse
import time

from envs.synthetic import SyntheticConfig, calibration_accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    acc = calibration_accuracies(SyntheticConfig(data_seed=args.data_seed))
    print("| glimpse policy | test accuracy | target |")
    print("|---|---:|---|")
    print(f"| oracle (one core cell per frame) | {acc['oracle']:.1%} | >= 90 % |")
    print(f"| average of all 49 cells | {acc['all_cells']:.1%} | <= 60 % |")
    print(f"| random glimpse per frame | {acc['random']:.1%} | <= 40 % |")
    print(f"\n(nearest class mean on clip-averaged cells, data_seed={args.data_seed}, "
          f"{time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
