"""Linear probes of a store: they see the class where the data puts it, and say where attention can matter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.probes import SUMMARIES, markdown_table, probe_store, ridge_probe
from envs.synthetic import SyntheticConfig, export_synthetic_store


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SyntheticConfig(num_classes=5, feature_dim=32, frames=6, train_clips_per_class=12,
                             test_clips_per_class=6, num_distractors=3)
    return export_synthetic_store(tmp_path_factory.mktemp("probe") / "store", config)


def test_the_oracle_cells_carry_the_class_that_the_mean_of_cells_dilutes(synthetic_store: Path) -> None:
    result = probe_store(synthetic_store)
    assert (result.train_clips, result.test_clips, result.num_classes) == (60, 30, 5)
    assert result.accuracy["oracle"] >= 0.9
    assert result.attention_gain is not None and result.attention_gain >= 0.2
    table = markdown_table([result])
    assert str(synthetic_store) in table and all(name in table for name in SUMMARIES)


def test_a_ridge_probe_learns_a_linear_rule_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    labels = [frozenset({int(v)}) for v in y[150:]]
    assert ridge_probe(x[:150], y[:150], x[150:], labels, 2) >= 0.8
    shuffled = rng.permutation(y)
    assert ridge_probe(x[:150], shuffled[:150], x[150:], [frozenset({int(v)}) for v in shuffled[150:]], 2) <= 0.75
