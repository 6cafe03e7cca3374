"""GPU paths: training on CUDA through the CLI, evaluating that run on the CPU, and CUDA feature extraction
agreeing with the CPU's. Skipped on machines without a CUDA device (CI); run on a GPU box with
``pytest tests/test_cuda.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import OVERRIDES, TINY
from video_fixtures import make_video_list

from feature_extractors import ExtractOptions, datasets, extract

DEVICE = "cuda"
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: our agents and the SB3 ones, in both kinds of policy
GPU_ALGOS = ["reinforce", "lstm_ppo", "soft_attention", "ppo", "recurrent_ppo"]


@pytest.mark.parametrize("algo", GPU_ALGOS)
def test_trains_on_cuda_and_evaluates_on_cpu(algo: str, tmp_path: Path) -> None:
    hp = tmp_path / "hp.json"  # JSON is YAML
    hp.write_text(json.dumps(OVERRIDES[algo]))
    logdir = tmp_path / "runs"
    train = [sys.executable, str(ROOT / "train_agent.py"), "--algo", algo, "--env-kwargs", *TINY, "--n-envs", "2",
             "--total-timesteps", "200", "--eval-every", "100", "--hyperparams", str(hp), "--logdir", str(logdir),
             "--run-name", "gpu", "--seed", "1", "--device", DEVICE, "--no-progress"]
    proc = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = logdir / "gpu"
    assert json.loads((run / "config.json").read_text())["device"] == DEVICE
    trained = json.loads((run / "result.json").read_text())["accuracy"]

    # A model trained on a GPU box is evaluated on a laptop: the CPU loads it and scores it the same.
    evaluate = [sys.executable, str(ROOT / "evaluate.py"), str(run), "--device", "cpu", "--no-video",
                "--no-progress"]
    proc = subprocess.run(evaluate, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((run / "eval.json").read_text())["metrics"]["accuracy"]
    assert evaluated == pytest.approx(trained, abs=1.0 / 6 + 1e-9)  # 6 test clips; CPU vs GPU rounding


def test_cuda_features_match_cpu_features(tmp_path: Path) -> None:
    listing, classes = make_video_list(tmp_path / "videos")
    clips = datasets.video_list(listing, classes)
    features = {}
    for device in ("cpu", DEVICE):
        opts = ExtractOptions(frames=4, fps=None, weights="random", device=device, batch_size=8, workers=1,
                              progress=False)
        summary = extract(clips, tmp_path / f"store_{device}", opts)
        assert summary.clips_done > 0
        features[device] = np.load(tmp_path / f"store_{device}" / "features.npy").astype(np.float32)
    cpu, gpu = features["cpu"], features[DEVICE]
    assert cpu.shape == gpu.shape
    # CUDA runs the trunk in float16: agreement to float16 rounding, relative to the features' scale.
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 2e-2
