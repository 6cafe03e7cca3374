"""evaluate.py on tiny runs trained in the test: metrics against an independent loop, compute counts,
attention maps, --compare (leaderboard + TensorBoard hparams), HMDB-51 splits and every error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from train_fixtures import TINY_ENV

from agents.algorithms.network import GlimpseNetwork, NetworkConfig
from agents.algorithms.policy import NetworkPolicy
from agents.evaluation import cli as evaluate_cli
from agents.evaluation.compare import compare, evaluate_splits
from agents.evaluation.metrics import googlenet_flops_per_frame, measure_cost
from agents.evaluation.report import Options, evaluate_run
from agents.evaluation.run import EVAL_MD, IMAGES_DIR, RunError, load_run_policy, open_run
from agents.training.runs import RunFolder
from envs.periphery import default_periphery_dim
from envs.render import CELL_PIXELS, HEADER_PIXELS
from envs.synthetic import SyntheticConfig, export_synthetic_store

torch.set_num_threads(1)

#: More clips than the shared tiny env: 20 test clips end in a padded batch of 3 envs.
TINY = {**TINY_ENV, "num_classes": 4, "frames": 6, "train_clips_per_class": 6, "test_clips_per_class": 5}
NET = {"embed_dim": 24, "hidden_size": 24, "num_layers": 1, "class_hidden": 24, "dropout": 0.0}
#: Tiny models, as flat --hyperparams files.
HYPERPARAMS = {
    "ours": {"learning_rate": 0.003, "network": NET},
    "sb3": {"n_steps": 24, "batch_size": 48, "n_epochs": 2,
            "policy_kwargs": {"features_extractor_kwargs": {"glimpse_dim": 16, "cell_dim": 4}, "net_arch": [16]}},
}
QUIET = {"progress": False, "n_envs": 3}  # 3 envs: 20 test clips end in a padded batch


def train_run(root: Path, algo: str, env_id: str, env_kwargs: dict[str, Any], steps: int = 480, seed: int = 0) -> Path:
    """A tiny run trained by ``train_agent.py`` itself; returns its run folder."""
    from agents.training import cli as train_cli

    hp = root / f"{algo}.yml"
    root.mkdir(parents=True, exist_ok=True)
    hp.write_text(yaml.safe_dump(HYPERPARAMS["sb3" if algo in ("ppo", "a2c", "recurrent_ppo") else "ours"]))
    name = f"{env_id}__{algo}__{seed}__{len(list(root.glob('*__*')))}"
    kwargs = [f"{k}={v!r}" for k, v in env_kwargs.items()]
    argv = ["--algo", algo, "--env", env_id, "--seed", str(seed), "--total-timesteps", str(steps), "--n-envs", "8",
            "--eval-every", "0", "--hyperparams", str(hp), "--logdir", str(root), "--run-name", name, "--no-progress"]
    assert train_cli.main(argv + (["--env-kwargs", *kwargs] if kwargs else [])) == 0
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    glimpse = {**TINY, "observation_mode": "glimpse"}
    return {
        "soft": train_run(root, "soft_attention", "SyntheticGlimpse-v0", dict(TINY)),
        "oracle": train_run(root, "oracle", "SyntheticGlimpse-v0", glimpse),
        "reinforce": train_run(root, "reinforce", "SyntheticGlimpse-v0", glimpse),
        "ppo": train_run(root, "ppo", "SyntheticGlimpse-v0", glimpse, steps=192),
    }


@pytest.fixture(scope="module")
def evaluated(runs: dict[str, Path]) -> dict[str, dict]:
    """eval.json of every run, evaluated once through the CLI entry point."""
    out = {}
    for name, path in runs.items():
        assert evaluate_cli.main([str(path), "--no-progress", "--n-envs", "3", "--maps", "2"]) == 0
        out[name] = json.loads((path / "eval.json").read_text())
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


# ---------------------------------------------------------------------------------------------- metrics
def independent_loop(run: Path, env_kwargs: dict[str, Any]) -> tuple[float, float, float]:
    """(accuracy, focus accuracy, paper reward) from the single env, one clip at a time."""
    policy = load_run_policy(open_run(run), "cpu", 0)
    env = gym.make("SyntheticGlimpse-v0", **{**env_kwargs, "subset": "test"})
    right, focus, rewards = [], [], []
    for clip in range(env.unwrapped.num_clips):
        obs, info = env.reset(seed=0, options={"video_index": clip})
        policy.reset(1)
        total, done, ep_reward = None, False, 0.0
        while not done:
            focus.append(float(info["on_core"]))
            batched = {k: np.asarray(v)[None] for k, v in obs.items()}
            core = env.unwrapped.next_core_mask()[None] if policy.needs_core_mask else None
            action, probs = policy.act(batched, True, core)
            total = probs[0].astype(np.float64) if total is None else total + probs[0]
            obs, reward, terminated, truncated, info = env.step(action[0])
            ep_reward += reward
            done = terminated or truncated
        right.append(int(total.argmax()) == info["label"])
        rewards.append(ep_reward)
    return float(np.mean(right)), float(np.mean(focus)), float(np.mean(rewards))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reinforce", "soft", "ppo"])  # deterministic policies (the oracle draws a core cell)
def test_accuracy_and_focus_match_an_independent_single_env_loop(runs, evaluated, name) -> None:
    report = evaluated[name]
    m = report["metrics"]
    accuracy, focus, reward = independent_loop(runs[name], json.loads((runs[name] / "config.json").read_text())
                                               ["env_kwargs"])
    assert m["n_clips"] == 20
    assert m["accuracy"] == pytest.approx(accuracy)
    assert m["focus_accuracy"] == pytest.approx(focus)
    assert m["paper_reward"] == pytest.approx(reward) and m["mean_return"] == pytest.approx(reward)
    assert m["glimpses_per_clip"] == TINY["frames"]
    assert 0.0 <= m["accuracy"] <= m["top5_accuracy"] == 1.0  # 4 classes
    assert 0.0 <= m["mean_ap"] <= 1.0 and m["hit_at_3"] >= m["accuracy"]
    assert report["settings"]["subset"] == "test"


@pytest.mark.slow
def test_oracle_looks_at_the_core(evaluated) -> None:
    m = evaluated["oracle"]["metrics"]
    # every glimpse it chooses is on the core; only the env's centre start glimpse may miss
    assert (TINY["frames"] - 1) / TINY["frames"] <= m["focus_accuracy"] < 1.0
    assert evaluated["reinforce"]["metrics"]["focus_accuracy"] < m["focus_accuracy"]


@pytest.mark.slow
def test_per_class_and_confusion(evaluated) -> None:
    report = evaluated["reinforce"]
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 20
    assert np.trace(cm) / cm.sum() == pytest.approx(report["metrics"]["accuracy"])
    assert [r["clips"] for r in report["per_class"]] == [5, 5, 5, 5]


@pytest.mark.slow
def test_episodes_subset_seed_and_report(runs, tmp_path) -> None:
    run = copy_run(runs["reinforce"], tmp_path)
    opts = Options(episodes=7, seed=3, video=False, subset="train", **QUIET)
    report = evaluate_run(open_run(run), opts)
    assert report["metrics"]["n_clips"] == 7 and report["settings"]["subset"] == "train"
    assert not list((run / IMAGES_DIR).glob("attention_*"))  # --no-video: no frames rendered
    text = (run / EVAL_MD).read_text()
    assert "top-1 accuracy" in text and "summed over the clip's steps" in text and "| class_00 |" in text


# ---------------------------------------------------------------------------------------------- compute
@pytest.mark.slow
def test_cost_account(evaluated) -> None:
    """Values and bytes read per clip, and the whole CNN per frame for every policy."""
    soft, glimpse, oracle = (evaluated[k]["metrics"] for k in ("soft", "reinforce", "oracle"))
    frames, d, k = TINY["frames"], TINY["feature_dim"], default_periphery_dim(TINY["feature_dim"])
    assert soft["cells_read_per_clip"] == 49 * frames  # soft attention reads every cell of every frame
    assert glimpse["cells_read_per_clip"] == frames  # one glimpse per frame
    assert soft["feature_values_read_per_clip"] == 49 * frames * d and soft["share_of_cube_read"] == 1.0
    # the learned glimpse agent reads its cells and the periphery; the oracle's fixed rule needs no periphery
    assert glimpse["feature_values_read_per_clip"] == frames * (d + 49 * k)
    assert oracle["feature_values_read_per_clip"] == frames * d
    assert (evaluated["reinforce"]["reads"], evaluated["oracle"]["reads"], evaluated["soft"]["reads"]) == (
        "glimpse + periphery", "glimpse", "cube")
    assert glimpse["store_bytes_read_per_clip"] == 2 * glimpse["feature_values_read_per_clip"]  # float16
    for m in (soft, glimpse, oracle):  # every policy on extracted features paid the whole CNN per frame
        assert m["cnn_flops_per_frame"] == googlenet_flops_per_frame()
        assert m["cnn_flops_per_clip"] == pytest.approx(frames * googlenet_flops_per_frame())
    assert soft["attention_flops_per_clip"] > glimpse["attention_flops_per_clip"] > 0
    assert glimpse["latency_ms_per_clip"] > 0


def flops_of(mode: str, frames: int, dim: int = 16) -> float:
    observation_mode = "glimpse" if mode == "glimpse" else "cube"
    kwargs = {**TINY, "frames": frames, "feature_dim": dim, "observation_mode": observation_mode, "subset": "test"}
    env = gym.make_vec("SyntheticGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    torch.manual_seed(0)
    net = GlimpseNetwork(NetworkConfig(feature_dim=dim, num_classes=4, input_mode=mode,  # type: ignore[arg-type]
                                       use_cube=mode == "soft", **NET))
    flops, _ = measure_cost(env, NetworkPolicy(net), clip=0, repeats=1)
    return flops


def test_attention_flops_per_clip_grow_with_the_cells_read() -> None:
    # constant cost per step: twice the frames, twice the FLOPs
    assert flops_of("glimpse", 12) == 2 * flops_of("glimpse", 6)
    assert flops_of("soft", 12) == 2 * flops_of("soft", 6)
    # soft attention's weighted sum over all 49 cells alone costs 2 x 49 x D per frame, and it grows with D
    # 49 times faster than the one-glimpse agent's input layer does
    assert flops_of("soft", 6) - flops_of("glimpse", 6) >= 6 * 2 * 49 * 16
    soft_growth = flops_of("soft", 6, dim=32) - flops_of("soft", 6, dim=16)
    glimpse_growth = flops_of("glimpse", 6, dim=32) - flops_of("glimpse", 6, dim=16)
    assert soft_growth >= 6 * 2 * 49 * 16 + glimpse_growth


# ---------------------------------------------------------------------------------------------- images
@pytest.mark.slow
def test_attention_maps_have_the_expected_size_and_are_not_blank(runs, evaluated) -> None:
    images = evaluated["oracle"]["images"]
    maps = sorted(k for k in images if k.startswith("attention_map/"))
    assert len(maps) == 2
    panel_h, panel_w = HEADER_PIXELS + 7 * CELL_PIXELS, 7 * CELL_PIXELS
    for key in maps:
        image = cv2.imread(str(runs["oracle"] / images[key]))
        # 6 steps in balanced rows of 3: title bar 30 px, 4 px gaps
        assert image.shape == (30 + 2 * panel_h + 3 * 4, 3 * panel_w + 4 * 4, 3)
        assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
        from PIL import Image

        with Image.open(runs["oracle"] / images[key].replace(".png", ".gif")) as gif:
            assert gif.n_frames == TINY["frames"] and gif.size == (panel_w, panel_h)
    cm = cv2.imread(str(runs["oracle"] / images["confusion_matrix"]))
    assert cm is not None and cm.std() > 10


def test_attention_maps_over_the_real_video_frames(tmp_path) -> None:
    """A store whose index names a readable source video: frames come from the video, not a heat map."""
    from agents.evaluation.images import AttentionTrace, attention_map
    from envs.build import build
    from envs.render import FrameRenderer
    from envs.store import ClipRecord, write_store

    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), (0, 0, 12 * i), np.uint8))  # BGR: red ramps up
    writer.release()
    feats = np.ones((1, 3, 7, 7, 8), np.float16)
    record = ClipRecord("clip", [0], "test", source=str(video), timestamps=[0.0, 0.5, 1.0])
    store = write_store(tmp_path / "store", feats, [record], ["a", "b"], settings={"weights": "random-init"})
    source, rules = build("store", data_root=str(store), subset="test")
    trace = AttentionTrace(0, "clip", 0, np.arange(3), np.array([24, 25, 32]), np.array([0, 1, 0]), 0, True)
    _, panels = attention_map(FrameRenderer(source, rules), trace)
    corner = panels[2][HEADER_PIXELS + 2:HEADER_PIXELS + 20, 2:20].reshape(-1, 3).mean(0)
    assert corner[0] > 100 and corner[1] < 30  # the video's red, not a viridis heat map


# ---------------------------------------------------------------------------------------------- compare
@pytest.mark.slow
def test_compare_three_runs_sorted_with_hparams(runs, evaluated, tmp_path) -> None:
    root = tmp_path / "runs"
    copies = [Path(shutil.copytree(runs[k], root / runs[k].name)) for k in ("soft", "reinforce", "ppo")]
    (root / "notes.txt").write_text("not a run: plain files matched by runs/* are skipped")
    assert evaluate_cli.main(["--compare", *map(str, sorted(root.iterdir())), "--no-progress"]) == 0
    rows = json.loads((root / "leaderboard.json").read_text())
    assert [r["status"] for r in rows] == ["ok"] * 3
    accuracies = [r["accuracy"] for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    table = (root / "leaderboard.md").read_text().splitlines()
    # the ranked rows name their run folders (the seed-group table below them names groups)
    body = [line for line in table if line.startswith("| ") and "__" in line]
    assert len(body) == 3 and all(r["run"] in line for r, line in zip(rows, body, strict=True))
    assert "attention FLOPs/clip" in table[2] and "values read/clip" in table[2] and "store bytes/clip" in table[2]
    assert "whole GoogLeNet" in table[0]  # the CNN, stated once, is the same for every policy
    assert {r["obs"] for r in rows} == {"cube", "glimpse + periphery"}
    plot = cv2.imread(str(root / "accuracy_vs_flops.png"))
    assert plot is not None and plot.std() > 10
    # the stored eval.json files were reused: nothing re-evaluated (one training and one evaluation log)
    assert all(len(list(c.glob("events.out.tfevents.*"))) == 2 for c in copies)

    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import metadata

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    content = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    sessions = {run: metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
                for run, tags in content.items() if metadata.SESSION_START_INFO_TAG in tags}
    assert set(sessions) == {c.name for c in copies}
    algos = {s.hparams["algo"].string_value for s in sessions.values()}
    assert algos == {"soft_attention", "ppo", "reinforce"}
    some = next(iter(sessions.values()))
    assert some.hparams["env/feature_dim"].number_value == 16 and "hp/learning_rate" in some.hparams
    images = mux.PluginRunToTagToContent("images")
    texts = mux.PluginRunToTagToContent("text")
    for run in sessions:
        scalars = mux.Runs()[run]["tensors"]  # the plugin multiplexer stores scalars as tensors
        assert "eval/accuracy" in scalars and "eval/attention_flops_per_clip" in scalars
        assert {"eval/confusion_matrix", "eval/attention_map/0"} <= set(images[run])
        assert "eval/per_class_accuracy/text_summary" in texts[run]


@pytest.mark.slow
def test_compare_groups_the_leaderboard_by_env_id(runs, evaluated, tmp_path) -> None:
    rung = train_run(tmp_path / "rung", "reinforce", "SyntheticGlimpse-Easy-v0", dict(TINY), steps=96)
    folders = [str(copy_run(runs[k], tmp_path)) for k in ("soft", "reinforce")] + [str(rung)]
    rows = compare(folders, Options(**QUIET), out=tmp_path / "board")
    assert [r["env"] for r in rows] == ["SyntheticGlimpse-Easy-v0", "SyntheticGlimpse-v0", "SyntheticGlimpse-v0"]
    assert rows[1]["accuracy"] >= rows[2]["accuracy"]  # ranked within the env
    assert rows[0]["chance"] == pytest.approx(1 / TINY["num_classes"])
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    easy, top = text.index("### `SyntheticGlimpse-Easy-v0` (chance"), text.index("### `SyntheticGlimpse-v0` (chance")
    assert easy < top
    ranks = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "__" in line]
    assert ranks == ["1", "1", "2"]  # the ranking starts again in each env's table


@pytest.mark.slow
def test_compare_reports_a_failing_run_and_goes_on(runs, tmp_path) -> None:
    good = copy_run(runs["reinforce"], tmp_path)
    broken = copy_run(runs["oracle"], tmp_path)
    (broken / "eval.json").unlink()
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    rows = compare([str(broken), str(good), str(not_a_run)], Options(**QUIET), out=tmp_path / "board")
    assert rows[0]["run"] == good.name and rows[0]["status"] == "ok"
    failed = {r["run"]: r["status"] for r in rows[1:]}
    assert "could not load the model" in failed[broken.name] and "no config.json" in failed[not_a_run.name]
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "failed: could not load the model" in text


# ---------------------------------------------------------------------------------------------- splits
@pytest.mark.slow
def test_hmdb51_splits_report_each_and_the_mean(stores, tmp_path) -> None:
    root = tmp_path / "hmdb"
    folders = [train_run(root, "reinforce", "HMDB51Glimpse-v0", {"data_root": str(stores["hmdb51"]), "split": s},
                         steps=96) for s in (1, 2, 3)]
    summary = evaluate_splits([str(f) for f in folders], [1, 2, 3], Options(**QUIET), out=None)
    accs = [summary["splits"][str(s)]["metrics"]["accuracy"] for s in (1, 2, 3)]
    assert summary["mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert "focus_accuracy" not in summary["mean"]  # no core annotation in HMDB-51
    assert (root / "splits.md").read_text().count("| top-1 accuracy |") == 1
    with pytest.raises(RunError, match="no run for split"):
        evaluate_splits([str(folders[0])], [1, 2], Options(**QUIET), out=None)
    with pytest.raises(RunError, match="two runs for split 1"):
        evaluate_splits([str(folders[0]), str(folders[0])], [1], Options(**QUIET), out=None)
    with pytest.raises(RunError, match="trained on split 3, which is not among --split 1 2"):
        evaluate_splits([str(f) for f in folders], [1, 2], Options(**QUIET), out=None)


# ---------------------------------------------------------------------------------------------- ActivityNet
@pytest.mark.slow
def test_activitynet_export_and_ground_truth(stores, tmp_path) -> None:
    run = train_run(tmp_path / "anet", "reinforce", "ActivityNetGlimpse-v0", {"data_root": str(stores["activitynet"])},
                    steps=48)
    export = tmp_path / "results.json"
    report = evaluate_run(open_run(run), Options(export_activitynet=str(export), **QUIET))
    results = json.loads(export.read_text())
    assert set(results) == {"version", "results", "external_data"}
    assert set(results["results"]) == {"v_d", "v_e"}  # the validation videos
    from agents.evaluation.metrics import activitynet_classification

    gt = {"v_d": ["cook", "dance"], "v_e": ["swim"]}
    assert report["metrics"]["mean_ap"] == pytest.approx(activitynet_classification(gt, results["results"]).mean_ap)
    annotations = tmp_path / "gt.json"
    annotations.write_text(json.dumps({"version": "1.3", "taxonomy": [], "database": {
        "v_d": {"subset": "training", "annotations": [{"label": "cook", "segment": [0, 1]}]}}}))
    with pytest.raises(RunError, match="no labelled videos in subset 'validation'"):
        evaluate_run(open_run(run), Options(activitynet_gt=str(annotations), **QUIET))


# ---------------------------------------------------------------------------------------------- errors
def test_error_not_a_run_folder(tmp_path, capsys) -> None:
    assert evaluate_cli.main([str(tmp_path), "--no-progress"]) == 1
    assert "is not a run folder: it has no config.json" in capsys.readouterr().err
    with pytest.raises(RunError, match="not a directory"):
        open_run(tmp_path / "nothing")
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(RunError, match="not valid JSON"):
        open_run(tmp_path)


@pytest.mark.slow
def test_error_bad_arguments(runs, capsys) -> None:
    run = str(runs["reinforce"])
    for argv, message in ((["--episodes", "0"], "--episodes must be >= 1"), (["--n-envs", "0"], "--n-envs must be"),
                          (["--compare", "--export-activitynet", "x.json"], "--export-activitynet writes the "
                                                                              "predictions of a single run"),
                          (["--device", "gpu"], "--device 'gpu' is not a torch device"),
                          (["--device", "cuda:99"], "CUDA GPU")):
        with pytest.raises(SystemExit) as exit_info:
            evaluate_cli.main([run, *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_error_split_runs_that_do_not_fit(runs) -> None:
    with pytest.raises(RunError, match="--split applies to HMDB51Glimpse-v0 runs"):
        evaluate_splits([str(runs["reinforce"])], [1], Options(**QUIET), out=None)


@pytest.mark.slow
def test_error_unknown_env(runs, tmp_path) -> None:
    run = copy_run(runs["reinforce"], tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "env_id": "NoSuchGlimpse-v0"}))
    with pytest.raises(RunError, match="'NoSuchGlimpse-v0', which is not registered"):
        evaluate_run(open_run(run), Options(**QUIET))


@pytest.mark.slow
def test_error_missing_store(runs, tmp_path) -> None:
    run = copy_run(runs["reinforce"], tmp_path)
    config = json.loads((run / "config.json").read_text())
    config.update(env_id="StoreGlimpse-v0", env_kwargs={"data_root": str(tmp_path / "gone")})
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="No feature store at"):
        evaluate_run(open_run(run), Options(**QUIET))


@pytest.mark.slow
def test_error_store_differs_from_training(tmp_path) -> None:
    small = dict(TINY, train_clips_per_class=2, test_clips_per_class=1)
    store = export_synthetic_store(tmp_path / "store", SyntheticConfig(**small))
    run = train_run(tmp_path / "r", "reinforce", "StoreGlimpse-v0", {"data_root": str(store),
                                                                     "observation_mode": "glimpse"}, steps=24)
    # a store with other classes: the model's class count disagrees
    other = export_synthetic_store(tmp_path / "other", SyntheticConfig(**dict(small, num_classes=3)))
    with pytest.raises(RunError, match=r"differ from those run .* num_classes: the model takes 4, the env gives 3"):
        evaluate_run(open_run(run), Options(data_root=str(other), **QUIET))
    # other features of the same shape: caught through the data identity train_agent.py records
    config = json.loads((run / "config.json").read_text())
    trained_on = gym.make_vec("StoreGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point",
                              data_root=str(store), subset="test").unwrapped.source.identity()
    assert config["data"] == trained_on
    assert evaluate_run(open_run(run), Options(video=False, **QUIET))["metrics"]["n_clips"] == 4
    meta = json.loads((store / "meta.json").read_text())
    (store / "meta.json").write_text(json.dumps({**meta, "weights": "IMAGENET1K_V1"}))
    with pytest.raises(RunError, match="weights: trained on 'synthetic', now 'IMAGENET1K_V1'"):
        evaluate_run(open_run(run), Options(**QUIET))
    renamed = dict(small, num_classes=4)
    third = export_synthetic_store(tmp_path / "third", SyntheticConfig(**renamed))
    meta = json.loads((third / "meta.json").read_text())
    (third / "meta.json").write_text(json.dumps({**meta, "class_names": ["run", "jump", "sit", "eat"]}))
    with pytest.raises(RunError, match="class_names: trained on 4 classes \\['class_00'"):
        evaluate_run(open_run(run), Options(data_root=str(third), **QUIET))


@pytest.mark.slow
def test_error_corrupt_checkpoint_and_missing_model(runs, tmp_path) -> None:
    run = copy_run(runs["reinforce"], tmp_path)
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 2])  # a torn save
    with pytest.raises(RunError, match="could not load the model .* corrupt or incomplete"):
        evaluate_run(open_run(run), Options(**QUIET))
    checkpoint = RunFolder(run).latest_checkpoint()
    assert checkpoint is not None
    report = evaluate_run(open_run(run), Options(checkpoint=str(checkpoint), video=False, **QUIET))
    assert report["metrics"]["n_clips"] == 20 and report["model"]["file"].startswith("checkpoints/")
    checkpoint.write_bytes(b"garbage")
    with pytest.raises(RunError, match=f"could not load the model .* from '{checkpoint}'"):
        evaluate_run(open_run(run), Options(checkpoint=str(checkpoint), **QUIET))
    # without its final model a run is evaluated from its latest checkpoint; with neither, it is refused
    (run / "model.pt").unlink()
    with pytest.raises(RunError, match="could not load the model"):
        evaluate_run(open_run(run), Options(**QUIET))
    checkpoint.unlink()
    with pytest.raises(RunError, match="has no trained model to load"):
        evaluate_run(open_run(run), Options(**QUIET))
