"""The difficulty ladder: registered variants of the synthetic benchmark, easiest first.

One table, :data:`LADDER`, is the single source of truth: registration (``envs/__init__.py``), the env
manual (``GlimpseEnv``'s docstring shows :func:`ladder_table`), the hyperparameter files (keyed by these
ids), the calibration and ladder benches and the tests read it. Each rung is a
fixed set of :class:`~envs.synthetic.SyntheticConfig` knobs (keyword arguments given to ``gym.make``
still override them); the top rung, ``SyntheticGlimpse-v0``, is the paper-scale default benchmark.

The easy rung proves a pipeline: Stable-Baselines3 ``ppo``, ``a2c`` and sb3-contrib ``recurrent_ppo``
with the shipped hyperparameters learn it from the reward alone. Each rung up to Hard has more classes, longer
clips, wider features, more distractors, more noise and a fainter saliency signature; the top rung is Hard with
wider features (1024 against 768), which slows learning; above the easiest,
the average of all cells is well below oracle glimpses (``bench/bench_synthetic_calibration.py``), so
where the agent looks matters.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from envs.synthetic import SyntheticConfig

#: Env id -> synthetic knobs, easiest rung first; the last rung is the default benchmark.
LADDER: dict[str, dict[str, Any]] = {
    # Many training clips: with the default 70 per class a recurrent policy memorises the 280 clips' layouts
    # (recurrent_ppo: 98 % on train, 54 % on test, before the per-D SNR scaling) instead of reading the evidence.
    "SyntheticGlimpse-Easy-v0": {
        "num_classes": 4, "feature_dim": 64, "frames": 8, "num_distractors": 0, "noise": 0.3, "saliency": 2.0,
        "train_clips_per_class": 2500,
    },
    "SyntheticGlimpse-Medium-v0": {
        "num_classes": 10, "feature_dim": 128, "frames": 15, "num_distractors": 1, "noise": 0.6, "saliency": 1.5,
    },
    # The top rung's task at 768-d features instead of 1024. The agents trained with the label learn about as
    # slowly as the features are wide (200k env steps, seed 0: reinforce 86 % at D = 512, 69 % at 768, 18 % at
    # 1024), so the width separates Hard from the top; fewer classes would not do (40 classes at 1024-d: the
    # all-cells calibration falls below the top's; 25 classes at 256-d, 2 distractors, noise 0.8 and saliency 1.2
    # is as easy as Medium for them, 99.9 %).
    "SyntheticGlimpse-Hard-v0": {
        "num_classes": 51, "feature_dim": 768, "frames": 30, "num_distractors": 3, "noise": 1.0, "saliency": 1.0,
    },
    "SyntheticGlimpse-v0": {},  # the defaults of SyntheticConfig: 51 classes, 1024-d, 30 frames, 3 distractors
}

#: The top rung: the paper-scale default benchmark. A lower rung's hyperparameters start from its entry.
TOP_RUNG = "SyntheticGlimpse-v0"
#: The env every command uses when none is named (train_agent.py, agents.training.sweep, python -m envs).
DEFAULT_ENV = TOP_RUNG

#: Knobs shown in the ladder's table (the others keep SyntheticConfig's defaults on every rung).
TABLE_KNOBS = ("num_classes", "feature_dim", "frames", "num_distractors", "noise", "saliency", "drift",
               "train_clips_per_class", "test_clips_per_class")


def rung_config(env_id: str) -> SyntheticConfig:
    """The synthetic data of a rung."""
    if env_id not in LADDER:
        raise ValueError(f"unknown ladder rung {env_id!r}; the rungs are {', '.join(LADDER)}")
    return SyntheticConfig(**LADDER[env_id])


#: Calibration targets of every rung (nearest class mean, :func:`envs.synthetic.calibration_accuracies`):
#: oracle glimpses at least this accurate ...
ORACLE_MIN = 0.9
#: ... and, above the easiest rung, the average of all cells at least this far below oracle (attention matters).
ATTENTION_GAP_MIN = 0.3


def calibration_failures(accuracies: dict[str, dict[str, float]]) -> list[str]:
    """What breaks the ladder's calibration targets, given each rung's calibration accuracies (rung order).

    Every rung: oracle >= ORACLE_MIN. Above the easiest: all-cells <= oracle - ATTENTION_GAP_MIN. Up the
    ladder the all-cells and random-glimpse accuracies never rise (each rung is harder without attention).
    """
    failures = []
    rungs = [r for r in LADDER if r in accuracies]
    for i, rung in enumerate(rungs):
        acc = accuracies[rung]
        if acc["oracle"] < ORACLE_MIN:
            failures.append(f"{rung}: oracle {acc['oracle']:.3f} < {ORACLE_MIN}")
        if i > 0 and acc["all_cells"] > acc["oracle"] - ATTENTION_GAP_MIN:
            failures.append(f"{rung}: all cells {acc['all_cells']:.3f} not {ATTENTION_GAP_MIN} below oracle")
        if i > 0:
            below = accuracies[rungs[i - 1]]
            for policy in ("all_cells", "random"):
                if acc[policy] > below[policy]:
                    failures.append(f"{rung}: {policy} {acc[policy]:.3f} above the rung below ({below[policy]:.3f})")
    return failures


def lineage(env_id: str) -> list[str]:
    """Env ids whose hyperparameter entries apply to ``env_id``, in order (general first, itself last).

    A lower rung inherits the top rung's entry (e.g. the synthetic benchmark's small network), so a
    hyperparameter file needs a rung entry only where the rung differs (budgets, learning rates).
    """
    return [TOP_RUNG, env_id] if env_id in LADDER and env_id != TOP_RUNG else [env_id]


def _check_table() -> None:
    """Every rung's knobs are SyntheticConfig fields (a typo here would otherwise surface at gym.make)."""
    names = {f.name for f in fields(SyntheticConfig)}
    for env_id, knobs in LADDER.items():
        unknown = set(knobs) - names
        if unknown:
            raise ValueError(f"ladder rung {env_id}: unknown synthetic knob(s) {', '.join(sorted(unknown))}")


_check_table()


def ladder_table() -> str:
    """The ladder as a markdown table (rows: rungs; columns: the knobs and chance accuracy)."""
    lines = ["| env id | " + " | ".join(TABLE_KNOBS) + " | chance |", "|---|" + "---:|" * (len(TABLE_KNOBS) + 1)]
    for env_id in LADDER:
        config = asdict(rung_config(env_id))
        cells = [str(config[k]) for k in TABLE_KNOBS]
        lines.append(f"| `{env_id}` | " + " | ".join(cells) + f" | {1 / config['num_classes']:.1%} |")
    return "\n".join(lines)
