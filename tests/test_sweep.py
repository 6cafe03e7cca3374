"""``python -m agents.training.sweep`` on local Ray (2 CPUs) with tiny trials: run folders evaluate.py reads, a sweep
killed after its first trial resumes with only the second, and bad specs / addresses refused up front."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ray_fixtures import kill_marked, marked_env
from train_fixtures import SMALL_NET, TINY

from agents.training import sweep

pytestmark = pytest.mark.slow  # Ray and subprocess sweeps

ROOT = Path(__file__).resolve().parents[1]
TINY_KWARGS = {k: int(v) for k, v in (item.split("=") for item in TINY)}
SPEC = {
    "env": "SyntheticGlimpse-v0", "algos": ["reinforce"], "seeds": [0, 1], "env_kwargs": [TINY_KWARGS],
    "hyperparams": [{**SMALL_NET, "n_envs": 2}], "train": {"total_timesteps": 200, "eval_every": 100},
}  # fmt: skip


def _spec(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


def _sweep(args: list[str], marker: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "agents.training.sweep", "--cpus", "2", "--max-concurrent", "1", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=marked_env(marker), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_killed_sweep_resumes_only_the_unfinished_trial(tmp_path: Path, marker: str) -> None:
    out = tmp_path / "sweep"
    trials = sweep.expand(SPEC)
    first, second = (out / t["run_name"] for t in trials)
    proc = _sweep(["--spec", str(_spec(tmp_path)), "--out", str(out)], marker)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (first / "result.json").is_file():
        time.sleep(0.05)
    assert proc.poll() is None and (first / "result.json").is_file(), proc.stdout.read()
    proc.send_signal(signal.SIGKILL)  # the sweep's driver dies right after its first trial
    proc.wait()
    proc.stdout.close()
    kill_marked(marker)
    assert not (second / "result.json").exists()
    kept = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.rglob("*") if p.is_file()}

    proc = _sweep(["--resume", str(out)], marker)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.rglob("*") if p.is_file()} == kept
    assert [r["step"] for r in (json.loads(x) for x in (second / "eval.jsonl").read_text().splitlines())] == [100, 200]
    config = json.loads((second / "config.json").read_text())
    assert config["seed"] == 1 and config["env_kwargs"] == TINY_KWARGS and config["hyperparams"]["n_envs"] == 2
    # Tune saw every evaluation of the trial as it went
    reports = [json.loads(line) for path in (out / ".tune").glob("*/result.json") for line in
               path.read_text().splitlines()]
    steps = [r["env_steps"] for r in reports if r["config"]["trial"]["run_name"] == second.name]
    assert steps[:2] == [100, 200] and all("eval/accuracy" in r for r in reports)

    from agents.evaluation import cli as evaluate_cli

    assert evaluate_cli.main(["--compare", str(first), str(second), "--out", str(tmp_path / "board"), "--no-progress",
                          "--no-video"]) == 0
    rows = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert sorted(r["run"] for r in rows if r["status"] == "ok") == sorted([first.name, second.name])
    groups = json.loads((tmp_path / "board" / "seed_groups.json").read_text())
    assert [(g["n"], sorted(g["seeds"])) for g in groups] == [(2, [0, 1])]  # two seeds of one setting


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algos": ["reinforce", "no_such_algo"]}, "no_such_algo"),
        ({"env_kwargs": [{**TINY_KWARGS, "num_clases": 3}]}, "num_clases"),
        ({"hyperparams": [{"learning_rat": 0.1}]}, "learning_rat"),
        ({"algo": ["reinforce"]}, "unknown key(s) algo"),
        ({"train": {"total_steps": 5}}, "'train' takes"),
    ],
)
def test_bad_spec_is_refused_before_any_trial(tmp_path: Path, changes: dict, message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert sweep.main(["--spec", str(_spec(tmp_path, **changes)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sweep: error: ") and message in err[0]
    assert not out.exists()  # nothing written, no Ray started


def test_seeds_on_the_command_line_replace_the_specs(tmp_path: Path) -> None:
    spec = _spec(tmp_path, grids=[{"seeds": [5, 6]}, {}])
    args = sweep.build_parser().parse_args(["--spec", str(spec), "--seeds", "3", "--out", str(tmp_path / "s")])
    assert [t["seed"] for t in sweep.expand(sweep._spec_from_args(args))] == [3, 3]


def test_unreachable_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    status = sweep.main(["--algos", "random", "--env-kwargs", *TINY, "--out", str(tmp_path / "s"),
                         "--address", "127.0.0.1:1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and time.monotonic() - started < 60
    assert len(err) == 1 and "no Ray head node answers at 127.0.0.1:1" in err[0] and "ray start --head" in err[0]


def test_without_ray_sweeps_say_how_to_install_it_and_nothing_imports_ray_or_rliable(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from agents.training.sweep import main; "
            f"sys.exit(main(['--algos', 'random', '--env-kwargs', {', '.join(map(repr, TINY))}, "
            f"'--out', {str(tmp_path / 's')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=marked_env("none"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("sweep: error: Ray is not installed; pip install")
    # the core modules and CLIs import neither Ray nor rliable
    code = ("import sys, runpy; import envs, agents, agents.training.session, agents.evaluation.statistics, "
            "agents.training.sweep, agents.training.cli, agents.evaluation.cli, agents.common.cluster, "
            "feature_extractors, feature_extractors.cli, feature_extractors.distributed; "
            "runpy.run_path('evaluate.py'); runpy.run_path('train_agent.py'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'rliable', 'arch')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=marked_env("none"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
