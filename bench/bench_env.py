"""Environment throughput (glimpse steps per second) and memory, against CartPole-v1 in the same run.

    python bench/bench_env.py            # full run (~1-2 min)
    python bench/bench_env.py --quick    # shorter timings

Prints a Markdown table for bench/README.md. Targets: the single env in glimpse mode at least half
of CartPole-v1's single-env rate; the batched vector env in glimpse mode at least 1,000,000 glimpse
steps/s at 1024 sub-envs (float16 observations), with the periphery on ("glimpse" rows) and
without it ("glimpse, blind": ``periphery_dim=0``); peak RSS that does not grow with the number of videos.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)

ENV_ID = "SyntheticGlimpse-v0"


def rate(step: Callable[[], object], per_call: int, seconds: float) -> float:
    """Steps per second of ``step`` (each call = ``per_call`` env steps), best of 3 windows."""
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            step()
            calls += 1
        best = max(best, calls * per_call / elapsed)
    return best


def single_env_rate(env_id: str, seconds: float, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(256)]
    state = {"i": 0}

    def step() -> None:
        state["i"] += 1
        _, _, terminated, truncated, _ = env.step(actions[state["i"] % 256])
        if terminated or truncated:
            env.reset()

    return rate(step, 1, seconds)


def vector_env_rate(mode: str, num_envs: int, seconds: float, **kwargs) -> float:
    vec = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    actions = [vec.action_space.sample() for _ in range(8)]
    state = {"i": 0}

    def step() -> None:
        state["i"] += 1
        vec.step(actions[state["i"] % 8])

    result = rate(step, num_envs, seconds)
    vec.close()
    return result


def copy_bandwidth(seconds: float, mib: int = 64) -> float:
    """Bytes/s numpy copies between two large arrays (best of 3 windows): the memory ceiling of any step that
    must write its observations."""
    src, dst = np.ones(mib << 20, np.uint8), np.empty(mib << 20, np.uint8)
    return rate(lambda: np.copyto(dst, src), mib << 20, seconds)


def peak_rss_mib(train_clips_per_class: int, steps: int = 200) -> float:
    """Peak RSS of a fresh process that steps 64 batched envs over a synthetic set of this size."""
    # VmHWM, not getrusage: ru_maxrss survives exec, so it would report this (large) parent's peak.
    code = (
        "import numpy as np, gymnasium as gym, envs\n"
        f"v = gym.make_vec('{ENV_ID}', num_envs=64, vectorization_mode='vector_entry_point', "
        f"train_clips_per_class={train_clips_per_class})\n"
        "v.reset(seed=0)\n"
        f"for _ in range({steps}): v.step(v.action_space.sample())\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 4.0

    cartpole = single_env_rate("CartPole-v1", seconds)
    rows: list[tuple[str, str, float]] = []
    views = {"glimpse": {"observation_mode": "glimpse"},
             "glimpse, blind": {"observation_mode": "glimpse", "periphery_dim": 0},
             "cube": {"observation_mode": "cube"}}
    for obs_mode, kw in views.items():
        rows.append(("single env (gym.make)", obs_mode, single_env_rate(ENV_ID, seconds, **kw)))
        rows.append(("SyncVectorEnv, 64 envs", obs_mode, vector_env_rate("sync", 64, seconds, **kw)))
        for dtype in ("float32", "float16"):
            for n in (64, 1024):
                r = vector_env_rate("vector_entry_point", n, seconds, observation_dtype=dtype, **kw)
                rows.append((f"batched vector env, {n} envs, {dtype}", obs_mode, r))

    print(f"\nCartPole-v1 single env (reference, same run): {cartpole:,.0f} steps/s\n")
    print("| env | observation | glimpse steps/s | x CartPole |")
    print("|---|---|---:|---:|")
    for name, obs_mode, r in rows:
        print(f"| {name} | {obs_mode} | {r:,.0f} | {r / cartpole:.2f} |")
    single_glimpse = rows[0][2]
    print(f"\nsingle env (glimpse) / CartPole: {single_glimpse / cartpole:.2f}  (target >= 0.5)")
    for view in ("glimpse", "glimpse, blind"):
        batched = next(r for n, m, r in rows if m == view and "1024 envs, float16" in n)
        print(f"batched 1024 envs ({view}, float16): {batched:,.0f} steps/s  (target >= 1,000,000)")

    # A step must at least write its observation (glimpse + periphery: D + 49 k values, float16).
    bandwidth = copy_bandwidth(seconds)
    space = gym.make(ENV_ID, observation_mode="glimpse", observation_dtype="float16").observation_space
    obs_bytes = sum(int(np.prod(space[k].shape)) * space[k].dtype.itemsize for k in ("glimpse", "periphery"))
    print(f"memory copy bandwidth {bandwidth / 1e9:.1f} GB/s: at {obs_bytes:,} observation bytes per glimpse step "
          f"(float16, with the periphery) the ceiling is {bandwidth / obs_bytes:,.0f} steps/s")

    small, large = peak_rss_mib(70), peak_rss_mib(70_000)
    print(f"\npeak RSS, default synthetic source, 64 batched envs: {small:.0f} MiB with 3,570 train videos, "
          f"{large:.0f} MiB with 3,570,000 (ratio {large / small:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cartpole": cartpole, "rows": rows, "rss_mib": [small, large], "copy_bandwidth": bandwidth},
                      f, indent=2)


if __name__ == "__main__":
    main()
