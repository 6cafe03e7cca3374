from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the repository root before any installed copy: the tests import this checkout's packages
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from ray_fixtures import local_ray, marker  # noqa: F401  (fixtures: one local Ray per test module)
from store_fixtures import activitynet_like_store, generic_store, hmdb_like_store
from train_fixtures import TINY_ENV

import envs  # registers the env ids


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small store per dataset kind, shared by the tests (read-only)."""
    root = tmp_path_factory.mktemp("stores")
    return {
        "hmdb51": hmdb_like_store(root / "hmdb51"),
        "activitynet": activitynet_like_store(root / "activitynet"),
        "store": generic_store(root / "mine"),
    }


@pytest.fixture(scope="session")
def env_kwargs(stores: dict[str, Path]) -> dict[str, dict]:
    """Keyword arguments that make each registered id small and file-backed where it needs files."""
    return {
        # the lower ladder rungs are small: they are checked with their registered knobs
        **{rung: {} for rung in envs.LADDER if rung != envs.ladder.TOP_RUNG},
        "SyntheticGlimpse-v0": dict(TINY_ENV),
        "HMDB51Glimpse-v0": {"data_root": str(stores["hmdb51"]), "split": 2},
        "ActivityNetGlimpse-v0": {"data_root": str(stores["activitynet"])},
        "StoreGlimpse-v0": {"data_root": str(stores["store"])},
    }
