"""Feature extraction with ``--ray`` on local Ray (2 CPUs): the same store as without it, a kill of the
driver in the middle loses nothing, and bad addresses / a missing Ray are one-line errors.

Tiny settings: T = 4 frames, real GoogLeNet with random seeded weights, batches of 4 frames (one clip).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ray_fixtures import kill_marked, marked_env, marked_pids
from test_extract import assert_same_store
from video_fixtures import make_hmdb51, write_video

from feature_extractors import ExtractOptions, datasets, extract
from feature_extractors.distributed import extract_on_ray

pytestmark = pytest.mark.slow  # Ray

ROOT = Path(__file__).resolve().parents[1]
T = 4
OPTIONS = ExtractOptions(frames=T, fps=10.0, weights="random", seed=0, device="cpu", batch_size=4, workers=1,
                         progress=False)
CLI = ["-T", str(T), "--weights", "random", "--device", "cpu", "--batch-size", "4", "--no-progress"]
LIST_CLIPS = 16


@pytest.fixture(scope="module")
def hmdb_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_hmdb51(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def hmdb(hmdb_dirs: tuple[Path, Path]) -> datasets.ClipList:
    return datasets.hmdb51(*hmdb_dirs)


@pytest.fixture(scope="module")
def video_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 small clips (enough network work for a kill to land in the middle), one unreadable."""
    root = tmp_path_factory.mktemp("list")
    lines = []
    for i in range(LIST_CLIPS):
        write_video(root / f"clip{i:02d}.avi", 8 + i, 10.0)
        lines.append(f"clip{i:02d}.avi {'a' if i % 2 else 'b'}")
    (root / "broken.avi").write_bytes(b"not a video")
    lines.append("broken.avi a")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


def test_ray_store_is_the_local_store(hmdb: datasets.ClipList, local_ray: object, tmp_path: Path) -> None:
    local = extract(hmdb, tmp_path / "local", OPTIONS)
    # float sums depend on the thread count: give the actor the threads the local pipeline had
    distributed = extract_on_ray(hmdb, tmp_path / "ray", OPTIONS, threads=torch.get_num_threads())
    assert (distributed.clips_done, distributed.clips_failed) == (local.clips_done, local.clips_failed) == (5, 2)
    assert distributed.device.startswith("Ray: 1 cpu actor")
    assert_same_store(tmp_path / "local", tmp_path / "ray")  # bit-identical features, same index and failures


def test_killed_ray_driver_resumes_without_losing_or_redoing_clips(
    video_list: Path, local_ray: object, marker: str, tmp_path: Path
) -> None:
    clips = datasets.video_list(video_list)
    reference = tmp_path / "local"
    extract(clips, reference, OPTIONS)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "feature_extractors", "videos", "--list", str(video_list), "--out", str(out),
           *CLI, "--ray", "--ray-threads", str(torch.get_num_threads())]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=marked_env(marker), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    done_file = out / "done.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if done_file.is_file() and len(done_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the extraction ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)  # the driver dies mid-run, no clean-up of any kind
    proc.wait()
    proc.stderr.close()
    kill_marked(marker)
    done_before = {json.loads(line)["row"] for line in done_file.read_text().splitlines() if line.endswith("}")}
    assert 3 <= len(done_before) < LIST_CLIPS
    summary = extract_on_ray(clips, out, OPTIONS, threads=torch.get_num_threads())
    assert summary.clips_done_before == len(done_before)
    assert summary.clips_done == LIST_CLIPS - len(done_before)  # nothing redone
    assert summary.clips_failed == 1
    assert_same_store(reference, out)  # nothing lost, and bit-identical


def test_unreachable_address_is_one_line(hmdb_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    videos, splits = hmdb_dirs
    cmd = [sys.executable, "-m", "feature_extractors", "hmdb51", "--videos", str(videos), "--splits", str(splits),
           "--out", str(tmp_path / "s"), *CLI, "--ray", "127.0.0.1:1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=marked_env("none"), capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip().splitlines()  # timeout: a bounded wait, no hang
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert err[-1].startswith("error: no Ray head node answers at 127.0.0.1:1") and "ray start --head" in err[-1]
    assert not (tmp_path / "s").exists()


def test_missing_ray_is_one_line_with_the_pip_command(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from feature_extractors.cli import main; "
            f"sys.exit(main(['videos', '--list', {str(tmp_path / 'l.txt')!r}, '--out', {str(tmp_path / 's')!r}, "
            "'--weights', 'random', '--device', 'cpu', '--ray']))")
    (tmp_path / "l.txt").write_text("v.avi a\n")
    (tmp_path / "v.avi").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=marked_env("none"), capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "Ray is not installed" in lines[0] and "pip install" in lines[0]


def test_killed_network_worker_is_restarted_and_nothing_is_lost(
    video_list: Path, local_ray: str, tmp_path: Path
) -> None:
    import threading

    clips = datasets.video_list(video_list)
    reference = tmp_path / "local"
    extract(clips, reference, OPTIONS)
    out = tmp_path / "ray"
    result: dict[str, object] = {}
    threads = torch.get_num_threads()
    worker = threading.Thread(
        target=lambda: result.update(summary=extract_on_ray(clips, out, OPTIONS, threads=threads)))
    worker.start()
    done_file, killed = out / "done.jsonl", []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.is_alive() and not killed:
        if done_file.is_file() and len(done_file.read_text().splitlines()) >= 3:
            for pid in marked_pids(local_ray, b"ray::_Network"):  # this module's Ray's network actor
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    worker.join(timeout=300)
    assert killed and not worker.is_alive()
    summary = result["summary"]
    assert summary.clips_done == LIST_CLIPS and summary.clips_failed == 1  # Ray restarted the actor, retried
    assert_same_store(reference, out)
