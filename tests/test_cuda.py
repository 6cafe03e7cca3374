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
from video_fixtures import make_video_list

from feature_extractors import ExtractOptions, datasets, extract

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["num_classes=3", "feature_dim=16", "frames=5", "train_clips_per_class=3", "test_clips_per_class=2"]
SMALL_NET = {"network": {"embed_dim": 16, "hidden_size": 16, "num_layers": 1, "class_hidden": 16}}
SB3_SMALL = {"n_steps": 40, "batch_size": 40, "n_epochs": 1,
             "policy_kwargs": {"features_extractor_kwargs": {"glimpse_dim": 16, "cell_dim": 4}}}
HYPERPARAMS = {
    "reinforce": SMALL_NET,
    "lstm_ppo": SMALL_NET,
    "soft_attention": SMALL_NET,
    "ppo": SB3_SMALL,
    "recurrent_ppo": {**SB3_SMALL, "policy_kwargs": {**SB3_SMALL["policy_kwargs"], "lstm_hidden_size": 16}},
}


@pytest.mark.parametrize("algo", list(HYPERPARAMS))
def test_trains_on_cuda_and_evaluates_on_cpu(algo: str, tmp_path: Path) -> None:
    hp = tmp_path / "hp.json"  # JSON is YAML
    hp.write_text(json.dumps(HYPERPARAMS[algo]))
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
