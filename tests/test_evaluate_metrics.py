"""Pure scoring functions of evaluate.py (agents.evaluation.metrics, agents.evaluation.images): hand-worked cases, an
independent computation of ActivityNet mAP / Hit@k, FLOP formulas and chart images."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from agents.evaluation import metrics as M
from agents.evaluation.images import Point, confusion_image, montage, scatter_plot, write_gif, write_png

torch.set_num_threads(1)


def preds(**videos: list[tuple[str, float]]) -> dict[str, list[dict]]:
    return {v: [{"label": label, "score": score} for label, score in entries] for v, entries in videos.items()}


# ---------------------------------------------------------------------------------------------- hand-worked mAP
def test_map_two_classes_and_a_video_with_two_labels() -> None:
    gt = {"v1": ["A"], "v2": ["A", "B"], "v3": ["B"]}
    p = preds(v1=[("A", 0.9), ("B", 0.1)], v2=[("A", 0.6), ("B", 0.4)], v3=[("A", 0.7), ("B", 0.3)])
    s = M.activitynet_classification(gt, p, top_k=1)
    # A: v1 TP, v3 FP, v2 TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3
    assert s.average_precision["A"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # B: v2 TP, v3 TP, v1 FP -> AP = 1
    assert s.average_precision["B"] == pytest.approx(1.0)
    assert s.mean_ap == pytest.approx((5 / 6 + 1) / 2)
    # top-1: v1 A (right), v2 A (one of its two labels: right), v3 A (wrong)
    assert s.hit_at_k == pytest.approx(2 / 3)
    assert M.activitynet_classification(gt, p, top_k=3).hit_at_k == 1.0


def test_map_ties_are_broken_like_the_official_argsort() -> None:
    """Equal scores: the official ``argsort()[::-1]`` puts the later prediction first."""
    gt = {"v1": ["A"], "v2": ["B"]}
    later_wrong = preds(v1=[("A", 0.5)], v2=[("A", 0.5)])
    # v2 (a false positive) ranks first: precision 0 then 1/2 at recall 1 -> AP 1/2; B has no prediction -> 0
    s = M.activitynet_classification(gt, later_wrong)
    assert s.average_precision == {"A": pytest.approx(0.5), "B": 0.0}
    assert s.mean_ap == pytest.approx(0.25)
    later_right = {"v2": later_wrong["v2"], "v1": later_wrong["v1"]}
    assert M.activitynet_classification(gt, later_right).average_precision["A"] == pytest.approx(1.0)


def test_map_class_without_positive_is_not_scored() -> None:
    gt = {"v1": ["A"]}
    s = M.activitynet_classification(gt, preds(v1=[("A", 0.9), ("C", 0.8)]), top_k=1)
    assert set(s.average_precision) == {"A"}
    assert s.mean_ap == 1.0 and s.hit_at_k == 1.0
    # A prediction of a class absent from the ground truth still takes one of the video's top-k places.
    s = M.activitynet_classification(gt, preds(v1=[("C", 0.9), ("A", 0.8)]), top_k=1)
    assert s.mean_ap == 1.0 and s.hit_at_k == 0.0


def test_map_unknown_videos_missed_videos_and_repeats() -> None:
    gt = {"v1": ["A"], "v2": ["A"]}
    # vX is not in the ground truth: a false positive between two true positives
    s = M.activitynet_classification(gt, preds(v1=[("A", 0.9)], vX=[("A", 0.8)], v2=[("A", 0.7)]))
    assert s.mean_ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    # a second prediction of the same class for an already matched video is a false positive
    s = M.activitynet_classification(gt, preds(v1=[("A", 0.9), ("A", 0.8)], v2=[("A", 0.7)]))
    assert s.mean_ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    # videos without any prediction: recall stops at 1/3, and they miss Hit@k
    gt3 = {"v1": ["A"], "v2": ["A"], "v3": ["A"]}
    s = M.activitynet_classification(gt3, preds(v1=[("A", 0.9)]))
    assert s.mean_ap == pytest.approx(1 / 3)
    assert s.hit_at_k == pytest.approx(1 / 3)
    assert s.num_videos == 3


def test_interpolated_ap_matches_the_official_loop() -> None:
    def official(prec: np.ndarray, rec: np.ndarray) -> float:  # ActivityNet Evaluation/utils.py, verbatim logic
        mprec = np.hstack([[0], prec, [0]])
        mrec = np.hstack([[0], rec, [1]])
        for i in range(len(mprec) - 1)[::-1]:
            mprec[i] = max(mprec[i], mprec[i + 1])
        idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
        return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))

    rng = np.random.default_rng(0)
    for _ in range(50):
        tp = rng.random(rng.integers(1, 20)) < 0.4
        npos = max(1, int(tp.sum()) + int(rng.integers(0, 3)))
        tps, fps = np.cumsum(tp), np.cumsum(~tp)
        prec, rec = tps / (tps + fps), tps / npos
        assert M.interpolated_prec_rec(prec, rec) == pytest.approx(official(prec, rec))


# ---------------------------------------------------------------------------------------------- independent mAP
def independent_scores(gt: dict[str, list[str]], results: dict[str, list[dict]], k: int) -> tuple[float, float]:
    """mAP as the sum over true positives of (1 / positives) x (best precision at this rank or deeper), and
    Hit@k by plain sorting: a different computation from agents.evaluation.metrics."""
    flat = [(v, e["label"], e["score"], i) for i, (v, e) in enumerate((v, e) for v, es in results.items() for e in es)]
    aps = []
    for label in sorted({lab for labs in gt.values() for lab in labs}):
        positives = {v for v, labs in gt.items() if label in labs}
        ranked = sorted((x for x in flat if x[1] == label), key=lambda x: (-x[2], -x[3]))
        seen, hits = set(), []
        for v, _, _, _ in ranked:
            hits.append(v in positives and v not in seen)
            seen.add(v)
        precision = [sum(hits[: r + 1]) / (r + 1) for r in range(len(hits))]
        aps.append(sum(max(precision[r:]) for r in range(len(hits)) if hits[r]) / len(positives))
    hit = []
    for v, labs in gt.items():
        mine = sorted((x for x in flat if x[0] == v), key=lambda x: (-x[2], -x[3]))[:k]
        hit.append(float(any(x[1] in labs for x in mine)))
    return float(np.mean(aps)), float(np.mean(hit))


def test_map_matches_an_independent_computation() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d", "e"]
    for trial in range(40):
        videos = [f"v{i}" for i in range(int(rng.integers(3, 15)))]
        gt = {v: list(rng.choice(classes, size=int(rng.integers(1, 3)), replace=False)) for v in videos}
        results = {}
        for v in [*videos, "unknown1", "unknown2"]:
            if rng.random() < 0.15:
                continue  # some videos get no prediction
            chosen = rng.choice(classes, size=int(rng.integers(1, 6)), replace=trial % 3 == 0)
            results[v] = [{"label": str(c), "score": float(np.round(rng.random(), 1))} for c in chosen]  # ties
        expected_map, expected_hit = independent_scores(gt, results, 3)
        s = M.activitynet_classification(gt, results, top_k=3)
        assert s.mean_ap == pytest.approx(expected_map), trial
        assert s.hit_at_k == pytest.approx(expected_hit), trial


# ---------------------------------------------------------------------------------------------- formats
def test_results_export_is_the_official_format_and_scores_the_same() -> None:
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    out = M.activitynet_results(["x", "y"], scores, ["cook", "dance", "swim"])
    assert set(out) == {"version", "results", "external_data"}
    assert out["results"]["x"][0] == {"label": "cook", "score": 0.7}
    assert [e["label"] for e in out["results"]["y"]] == ["swim", "dance", "cook"]
    assert len(M.activitynet_results(["x", "y"], scores, ["cook", "dance", "swim"], top_k=2)["results"]["x"]) == 2
    json.dumps(out)
    s = M.activitynet_classification({"x": ["cook"], "y": ["swim", "dance"]}, out["results"])
    assert s.mean_ap == 1.0 and s.hit_at_k == 1.0


def annotation_file(tmp_path, database: dict) -> str:
    path = tmp_path / "activity_net.v1-3.min.json"
    path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    return str(path)


def test_ground_truth_file(tmp_path) -> None:
    db = {
        "a1": {"subset": "validation", "annotations": [{"label": "cook", "segment": [0, 1]},
                                                        {"label": "cook", "segment": [2, 3]}]},
        "a2": {"subset": "training", "annotations": [{"label": "swim", "segment": [0, 1]}]},
        "a3": {"subset": "testing", "annotations": []},
    }
    gt = M.load_activitynet_ground_truth(annotation_file(tmp_path, db), "validation")
    assert gt == {"a1": ["cook", "cook"]}


def test_ground_truth_without_the_subset_is_refused(tmp_path) -> None:
    db = {"a2": {"subset": "training", "annotations": [{"label": "swim", "segment": [0, 1]}]}}
    with pytest.raises(M.GroundTruthError, match="no labelled videos in subset 'validation'.*training"):
        M.load_activitynet_ground_truth(annotation_file(tmp_path, db), "validation")


def test_ground_truth_file_that_is_not_an_annotation_file(tmp_path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"results": {}}))
    with pytest.raises(M.GroundTruthError, match="not an ActivityNet annotation file"):
        M.load_activitynet_ground_truth(bad, "validation")
    with pytest.raises(M.GroundTruthError, match="no ActivityNet ground truth"):
        M.load_activitynet_ground_truth(tmp_path / "missing.json", "validation")


# ---------------------------------------------------------------------------------------------- accuracy
def test_topk_confusion_and_per_class() -> None:
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]])
    sets = [{0}, {0, 1}, {2}]
    assert M.topk_correct(scores, sets, 1).tolist() == [True, False, False]
    assert M.topk_correct(scores, sets, 2).tolist() == [True, True, False]
    assert M.topk_correct(scores, sets, 10).tolist() == [True, True, True]
    primary, predicted = np.array([0, 0, 2]), scores.argmax(1)
    cm = M.confusion_matrix(primary, predicted, sets, 3)
    assert cm.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    acc, counts = M.per_class_accuracy(primary, np.array([True, False, False]), 3)
    assert counts.tolist() == [2, 0, 1]
    assert acc[0] == 0.5 and np.isnan(acc[1]) and acc[2] == 0.0


# ---------------------------------------------------------------------------------------------- FLOPs
def test_flop_counter_counts_matrix_products_attention_sums_and_lstm() -> None:
    lstm = torch.nn.LSTM(8, 16, num_layers=2)
    with torch.no_grad(), M.counting_flops() as counter:
        lstm(torch.zeros(3, 1, 8))
    # 2 FLOPs per multiply-add of the gate matrix products; gates' elementwise products count 1 each
    matmuls = 2 * 3 * (4 * 16 * 8 + 4 * 16 * 16) + 2 * 3 * (4 * 16 * 16 * 2)
    assert matmuls <= counter.get_total_flops() <= matmuls + 2 * 3 * 3 * 16
    cells, weights = torch.zeros(2, 49, 16), torch.zeros(2, 49)
    with M.counting_flops() as counter:
        (weights.unsqueeze(-1) * cells).sum(-2)
    assert counter.get_total_flops() == 2 * 2 * 49 * 16


def test_googlenet_cost_per_frame() -> None:
    # about 1.5 G multiply-adds to inception5b at 224 x 224 (3.0 GFLOPs)
    assert 2.9e9 < M.googlenet_flops_per_frame() < 3.1e9


# ---------------------------------------------------------------------------------------------- images
# ---------------------------------------------------------------------------------------------- cost account
def test_values_read_count_cells_periphery_and_cube_once_per_frame() -> None:
    from envs.dynamics import EpisodeRules

    rules = EpisodeRules(frames=3, grid=7, feature_dim=1024, num_classes=5, observation_mode="glimpse",
                         periphery_dim=64, glimpses_per_frame=2)
    # two clips, 3 frames x 2 glimpses; the second looks twice at the same cell in frame 0
    locations = np.array([[0, 1, 2, 3, 4, 5], [7, 7, 8, 9, 10, 11]])
    frames = np.array([3, 3])
    blind = M.values_read(locations, frames, rules, cube=False, periphery=False)
    np.testing.assert_array_equal(blind, [6 * 1024, 5 * 1024])
    seen = M.values_read(locations, frames, rules, cube=False, periphery=True)
    np.testing.assert_array_equal(seen - blind, [3 * 49 * 64] * 2)
    np.testing.assert_array_equal(M.values_read(locations, frames, rules, cube=True, periphery=False),
                                  [3 * 49 * 1024] * 2)
    moving = dataclasses.replace(rules, periphery_motion=True)  # the motion periphery: k more values per cell
    with_motion = M.values_read(locations, frames, moving, cube=False, periphery=True)
    np.testing.assert_array_equal(with_motion - blind, [3 * 49 * 128] * 2)
    # one cell (1,024 values) and the periphery (49 x 64) per frame: 8.3 % of the cube, within a tenth
    one_glimpse = EpisodeRules(frames=3, grid=7, feature_dim=1024, num_classes=5, periphery_dim=64)
    share = M.values_read(np.zeros((1, 3), int), np.array([3]), one_glimpse, False, True) / (3 * 49 * 1024)
    assert share[0] == pytest.approx((1024 + 49 * 64) / (49 * 1024)) and share[0] <= 0.1


def test_an_early_exit_reads_only_the_frames_it_watched() -> None:
    from envs.dynamics import EpisodeRules

    rules = EpisodeRules(frames=4, grid=7, feature_dim=1024, num_classes=5, observation_mode="glimpse",
                         periphery_dim=64, early_exit=True)
    locations = np.array([[0, 1, 2, 3], [5, 6, -1, -1]])  # the second clip stopped after 2 frames
    frames = np.array([4, 2])
    np.testing.assert_array_equal(M.cells_read(locations, frames, rules, cube=False), [4, 2])
    np.testing.assert_array_equal(M.cells_read(locations, frames, rules, cube=True), [4 * 49, 2 * 49])
    np.testing.assert_array_equal(M.values_read(locations, frames, rules, False, True) - [4 * 1024, 2 * 1024],
                                  [4 * 49 * 64, 2 * 49 * 64])


@pytest.mark.parametrize("periphery_dim", [4, 0])
def test_reads_periphery_follows_the_network_and_the_env(periphery_dim: int) -> None:
    import gymnasium as gym

    from agents.algorithms.network import GlimpseNetwork, NetworkConfig
    from agents.algorithms.policy import NetworkPolicy

    tiny = {"num_classes": 3, "feature_dim": 64, "frames": 2, "train_clips_per_class": 1, "test_clips_per_class": 1}
    env = gym.make_vec("SyntheticGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point",
                       observation_mode="glimpse", **tiny)
    net = GlimpseNetwork(NetworkConfig(feature_dim=64, num_classes=3, use_cube=False, periphery_dim=periphery_dim,
                                       embed_dim=8, hidden_size=8, num_layers=1, class_hidden=8))
    assert M.reads_periphery(NetworkPolicy(net, "learned"), env) is bool(periphery_dim)
    blind = gym.make_vec("SyntheticGlimpse-v0", num_envs=1, vectorization_mode="vector_entry_point",
                         observation_mode="glimpse", periphery_dim=0, **tiny)
    assert not M.reads_periphery(object(), blind)  # nothing to read where the env serves no periphery
    assert M.reads_periphery(object(), env)  # any other policy reads every entry it is given


def test_chart_images(tmp_path) -> None:
    cm = np.array([[3, 1], [0, 4]])
    image = confusion_image(cm, ["run", "walk"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.std() > 10
    plot = scatter_plot([Point(1e5, 80, "a", "x"), Point(1e7, 90, "b", "y"), Point(float("nan"), 1, "c")],
                        "FLOPs", "accuracy")
    assert plot.shape == (560, 900, 3) and plot.std() > 10
    tiles = montage([np.full((10, 20, 3), 200, np.uint8)] * 5, columns=2, gap=2)
    assert tiles.shape == (3 * 10 + 4 * 2, 2 * 20 + 3 * 2, 3)
    import cv2

    assert cv2.imread(str(write_png(tmp_path / "p.png", plot))).shape == plot.shape
    gif = write_gif(tmp_path / "a.gif", [plot, 255 - plot], fps=2)
    assert gif.stat().st_size > 0
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 2 and im.size == (900, 560)
