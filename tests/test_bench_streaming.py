"""bench/bench_streaming.py on tiny rendered crop-cell stores: both pipelines timed, the streamed observations
equal to the store's, a trained run streamed, and bad inputs refused in one line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from bench_fixtures import ROOT, extract_tiny, render_tiny, run_python

BENCH = ROOT / "bench" / "bench_streaming.py"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    render_tiny(root)
    return root


def _store(root: Path, name: str, *glance: str) -> Path:
    return extract_tiny(root / "videos", root / name, "--cells", "crop", *glance)


def _bench(store: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = run_python(str(BENCH), "--store", str(store), "--clips", "2", "--json", str(out), "--no-progress", *extra,
                      cwd=out.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("glance", [[], ["--glance", "lowres", "--glance-size", "64"]], ids=["motion", "lowres"])
def test_both_pipelines_are_timed_and_the_stream_computes_what_the_store_holds(rendered: Path, glance: list) -> None:
    store = _store(rendered, "store-" + ("lowres" if glance else "motion"), *glance)
    done, result = _bench(store, rendered / f"{store.name}.json")
    full, attention = result["pipelines"]["full_frame"], result["pipelines"]["attention"]
    assert full["ms_per_clip"] > 0 and attention["ms_per_clip"] > 0
    assert result["ratio"] == pytest.approx(full["ms_per_clip"] / attention["ms_per_clip"])
    assert set(attention["stages_ms_per_clip"]) == {"decode", "glance", "glimpse", "policy"}
    assert sum(attention["stages_ms_per_clip"].values()) <= attention["ms_per_clip"] * 1.001
    assert set(full["stages_ms_per_clip"]) == {"decode", "network"}
    assert result["clips"] >= 1 and result["frames_per_clip"] == 3 and result["frames_watched"] == 3
    observations = result["observations"]
    assert observations["matched"] and not observations["mismatches"]
    assert observations["checked"] == result["clips"] * 3  # every streamed step compared with the env's
    meta = json.loads((store / "meta.json").read_text())
    per_frame = meta["cnn_flops_per_cell"] + meta["periphery"]["flops_per_frame"]
    assert attention["gflops_per_clip"] == pytest.approx(3 * per_frame / 1e9)
    assert full["gflops_per_clip"] == pytest.approx(3 * 2.995, rel=1e-3)
    assert result["policy"].startswith("random cells") and "random-cell policy stands in" in done.stdout
    assert "| full / attention |" in done.stdout and "x |" in done.stdout


@pytest.mark.slow
def test_a_trained_run_is_streamed_with_its_own_policy(rendered: Path, tmp_path: Path) -> None:
    store = rendered / "store-motion"
    if not (store / "meta.json").is_file():
        store = _store(rendered, "store-motion")
    hp = tmp_path / "hp.yml"
    hp.write_text("network:\n  embed_dim: 16\n  hidden_size: 16\n  num_layers: 1\n  class_hidden: 16\n")
    done = run_python(str(ROOT / "train_agent.py"), "--env", "StoreGlimpse-v0", "--env-kwargs",
                      f"data_root={store}", "observation_mode=glimpse", "--n-envs", "2", "--total-timesteps", "30",
                      "--eval-every", "0", "--hyperparams", str(hp), "--logdir", str(tmp_path / "runs"), "--threads",
                      "1", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    done, result = _bench(store, tmp_path / "trained.json", "--run", str(run))
    assert result["policy"] == f"trained: {run.name}" and "stands in" not in done.stdout
    assert result["observations"]["matched"] and 0.0 <= result["accuracy"] <= 1.0


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_streaming", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _tiny_store(path: Path, finished: bool) -> Path:
    """A full-frame store of one clip (random features): not something the bench streams."""
    import numpy as np

    from envs.store import ClipRecord, StoreWriter

    records = [ClipRecord(video_id="v", labels=[0], subset="test")]
    writer = StoreWriter.open(path, class_names=["a"], records=records, frames=2, grid=7, feature_dim=8,
                              settings={"cells": "full"})
    writer.write_clip(0, np.ones((2, 7, 7, 8), dtype=np.float16))
    if finished:
        writer.finalize()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no feature store there (no meta.json)"),
        (lambda p: _tiny_store(p / "s", finished=False), "is incomplete"),
        (lambda p: _tiny_store(p / "s", finished=True), "cells are 'full'; this bench streams a crop-cell store"),
    ],
    ids=["no-store", "unfinished", "full-frame"],
)
def test_bad_stores_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str) -> None:
    assert _module().main(["--store", str(make(tmp_path)), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_a_run_with_a_motion_periphery_is_refused(tmp_path: Path) -> None:
    module = _module()
    (tmp_path / "config.json").write_text(json.dumps({"env_kwargs": {"periphery_motion": True}}))
    with pytest.raises(module.BenchError, match="periphery_motion=True"):
        module.run_env_kwargs(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"env_kwargs": {"observation_mode": "cube"}}))
    with pytest.raises(module.BenchError, match="'cube' mode"):
        module.run_env_kwargs(tmp_path)
