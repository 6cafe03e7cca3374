"""bench/bench_train_throughput.py: --env-kwargs reaches the env the agents train on, and a malformed entry is
a one-line error."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from train_fixtures import TINY

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_train_throughput.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_train_throughput", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_env_kwargs_reach_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent the bench measures trains on an env built with the given kwargs (its rules say so)."""
    bench = load_bench()
    built: list[Any] = []
    resolve = bench.resolve_algorithm

    class Recording:
        def __init__(self, name: str) -> None:
            self.spec = resolve(name)

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.spec, attr)

        def build(self, *args: Any, **kwargs: Any) -> Any:
            built.append(self.spec.build(*args, **kwargs))
            return built[-1]

    monkeypatch.setattr(bench, "resolve_algorithm", Recording)
    monkeypatch.setattr(bench, "matmul_rate", lambda width, device, seconds=1.0: 1e9)  # not what is tested here
    bench.main(["--algos", "reinforce", "--steps", "50", "--threads", "0", "--width", "16",
                "--env-kwargs", *TINY, "periphery_dim=0"])
    assert len(built) == 1
    rules = built[0].env.unwrapped.rules
    assert (rules.observation_mode, rules.periphery_dim, rules.feature_dim, rules.frames) == ("glimpse", 0, 16, 5)
    assert "periphery" not in built[0].env.single_observation_space.spaces


def test_a_malformed_env_kwarg_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        load_bench().main(["--threads", "0", "--env-kwargs", "periphery_dim"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "malformed --env-kwargs entry 'periphery_dim': expected key=value" in err.strip().splitlines()[-1]
