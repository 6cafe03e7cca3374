"""Multi-seed statistics: seed groups, mean / IQM / 95 % bootstrap intervals (rliable), and their place in
``evaluate.py --compare``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from train_fixtures import SMALL_NET, TINY

from agents.evaluation import statistics
from agents.evaluation.statistics import SeedGroup, estimate

pytest.importorskip("rliable")


def _group(label: str, scores: list[float]) -> SeedGroup:
    return SeedGroup(label=label, key=label, runs=[f"{label}{i}" for i in range(len(scores))],
                     seeds=list(range(len(scores))), scores=scores)


def test_mean_iqm_and_reproducible_intervals() -> None:
    scores = [0.10, 0.50, 0.60, 0.90, 0.55, 0.62, 0.58, 0.20]
    first = estimate([_group("a", scores), _group("single", [0.4])], seed=3)
    again = estimate([_group("a", scores)], seed=3)  # and without the other group: intervals are per group
    other = estimate([_group("a", scores)], seed=4)
    a = next(g for g in first if g.label == "a")
    assert a.mean == pytest.approx(np.mean(scores))
    assert a.iqm == pytest.approx(np.mean(sorted(scores)[2:6]))  # the middle half of 8 runs
    assert a.mean_ci == again[0].mean_ci and a.iqm_ci == again[0].iqm_ci  # fixed seed: the same interval
    assert a.mean_ci != other[0].mean_ci  # the bootstrap really resamples
    for low, high in (a.mean_ci, a.iqm_ci):
        assert min(scores) <= low < high <= max(scores)
    assert a.mean_ci[0] < a.mean < a.mean_ci[1] and a.iqm_ci[0] < a.iqm < a.iqm_ci[1]
    single = next(g for g in first if g.label == "single")
    assert single.n == 1 and single.mean == single.iqm == 0.4 and single.mean_ci is None
    table = statistics.markdown(first)
    assert "| single (cube) |" not in table and "| single | 1 | 0 | 40.0% | n=1, no interval |" in table


def _train(root: Path, algo: str, seed: int) -> Path:
    from agents.training import cli as train_cli

    hp = root / "hp.yml"
    hp.write_text(yaml.safe_dump({**SMALL_NET, "n_envs": 2}))
    name = f"{algo}__{seed}"
    argv = ["--algo", algo, "--seed", str(seed), "--env-kwargs", *TINY, "--total-timesteps", "100", "--eval-every",
            "0", "--hyperparams", str(hp), "--logdir", str(root), "--run-name", name, "--no-progress"]
    assert train_cli.main(argv) == 0
    return root / name


@pytest.mark.slow
def test_compare_groups_three_seeds_with_mean_iqm_and_ci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.evaluation import cli as evaluate_cli

    root = tmp_path / "runs"
    root.mkdir()
    runs = [_train(root, "reinforce", seed) for seed in (0, 1, 2)] + [_train(root, "center", 0)]
    args = ["--compare", *map(str, runs), "--out", str(tmp_path / "board"), "--no-progress", "--no-video"]
    assert evaluate_cli.main(args) == 0
    printed = capsys.readouterr().out
    board = tmp_path / "board"
    groups = {g["label"]: g for g in json.loads((board / "seed_groups.json").read_text())}
    assert set(groups) == {"reinforce (cube)", "center (cube)"}
    three, one = groups["reinforce (cube)"], groups["center (cube)"]
    rows = {r["run"]: r for r in json.loads((board / "leaderboard.json").read_text())}
    accuracies = [rows[f"reinforce__{s}"]["accuracy"] for s in (0, 1, 2)]
    assert three["n"] == 3 and sorted(three["seeds"]) == [0, 1, 2]
    assert three["mean"] == pytest.approx(np.mean(accuracies)) and three["iqm"] == pytest.approx(np.mean(accuracies))
    low, high = three["mean_ci95"]
    assert min(accuracies) <= low <= three["mean"] <= high <= max(accuracies)
    assert one["n"] == 1 and one["mean_ci95"] is None
    leaderboard = (board / "leaderboard.md").read_text()
    assert "| reinforce (cube) | 3 | 0, 1, 2 |" in leaderboard and "n=1, no interval" in leaderboard
    assert "Seed groups" in printed and (board / "seed_intervals.png").stat().st_size > 1000
    first = (board / "seed_groups.json").read_text()
    assert evaluate_cli.main(args) == 0  # again (eval.json reused): the same intervals, bit for bit
    assert (board / "seed_groups.json").read_text() == first
