"""Calibration of the synthetic benchmark's difficulty ladder (docs/environment.md, envs/ladder.py).

    python bench/bench_synthetic_calibration.py [--data-seed N] [--rungs ID ...]

    python bench/bench_synthetic_calibration.py --periphery-dims 16 32 64 81   # choose k

A nearest-class-mean classifier, fit on the train subset, classifies each test clip from the clip
average of its glimpsed cells under three fixed glimpse policies: oracle (one core cell per frame), the
average of all 49 cells, one random cell per frame. These are ceilings of what a policy reaches with
perfect, no and random attention. Targets of the default benchmark (``SyntheticGlimpse-v0``, chance
1 / 51 = 2 %): oracle >= 90 %, all cells <= 60 %, random <= 40 %. Targets of the ladder
(``envs.ladder.calibration_failures``): oracle >= 90 % on every rung; above the easiest, the all-cells
average at least 30 points below oracle; all-cells and random accuracies never rise up the ladder.
The peripheral view (envs/periphery.py) must locate the core but not classify on the default benchmark:
the cell with the highest linear saliency score on the periphery >= 90 % of oracle's accuracy, the
periphery's own clip average <= 40 % (``--periphery-dims K ...`` compares sizes; see
``envs.synthetic.calibration_accuracies``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.ladder import LADDER, calibration_failures, rung_config
from envs.periphery import default_periphery_dim
from envs.synthetic import SyntheticConfig, calibration_accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--rungs", nargs="+", default=list(LADDER), choices=list(LADDER), metavar="ID",
                        help=f"ladder rungs (default: all of {', '.join(LADDER)})")
    parser.add_argument("--periphery-dims", type=int, nargs="+", default=None, metavar="K",
                        help="periphery sizes to compare on SyntheticGlimpse-v0 (default: the env's default k)")
    args = parser.parse_args()
    results = {}
    print("| env id | chance | oracle (one core cell per frame) | average of all 49 cells | random glimpse per frame "
          "| seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for rung in args.rungs:
        config = dataclasses.replace(rung_config(rung), data_seed=args.data_seed)
        start = time.perf_counter()
        acc = results[rung] = calibration_accuracies(config)
        print(f"| `{rung}` | {1 / config.num_classes:.1%} | {acc['oracle']:.1%} | {acc['all_cells']:.1%} "
              f"| {acc['random']:.1%} | {time.perf_counter() - start:.0f} |", flush=True)
    failures = calibration_failures(results)
    print(f"\n(nearest class mean on clip-averaged cells, data_seed={args.data_seed}); ladder targets: "
          + ("met" if not failures else "NOT met: " + "; ".join(failures)))
    top = results.get("SyntheticGlimpse-v0")
    if top is not None:
        ok = top["oracle"] >= 0.9 and top["all_cells"] <= 0.6 and top["random"] <= 0.4
        print(f"SyntheticGlimpse-v0 targets (oracle >= 90 %, all cells <= 60 %, random <= 40 %): "
              f"{'met' if ok else 'NOT met'}")
    config = SyntheticConfig(data_seed=args.data_seed)
    dims = args.periphery_dims or [default_periphery_dim(config.feature_dim)]
    print("\n| SyntheticGlimpse-v0, peripheral view | test accuracy | target |")
    print("|---|---:|---|")
    for k in dims:
        r = top if top is not None and k == default_periphery_dim(config.feature_dim) else calibration_accuracies(
            config, periphery_dim=k)
        print(f"| periphery k={k}: most salient cell per frame (on the core {r['saliency_focus']:.1%}) | "
              f"{r['saliency']:.1%} | >= 90 % of oracle |")
        print(f"| periphery k={k} alone (clip average) | {r['periphery']:.1%} | <= 40 % |")


if __name__ == "__main__":
    main()
