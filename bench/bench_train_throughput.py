"""Training throughput (env steps per second) of our recurrent agents against Stable-Baselines3's, measured in
one run on the same env with the same network width.

    python bench/bench_train_throughput.py                       # default SyntheticGlimpse-v0, glimpse mode
    python bench/bench_train_throughput.py --observation-mode cube --width 256
    python bench/bench_train_throughput.py --device cuda --our-n-envs 1024 4096
    python bench/bench_train_throughput.py --store bench_store --make-store --algos reinforce --observation-mode cube

``--store PATH`` trains each algorithm on that feature store (``StoreGlimpse-v0``) and on the synthetic source
at the store's shapes (classes, frames, feature size), alternately ``--repeats`` times, with the same
hyperparameters, and prints both rates and their ratio: what reading features from disk costs. ``--make-store``
first exports an HMDB-style store there if there is none: 10 classes x 24 clips of 30 x 7 x 7 x 1024 float16
(690 MB, no core annotation, like an extracted one).

Every algorithm trains through its ``agents.training.registry`` builder with its shipped hyperparameters for the env,
except the widths: LSTM ``--width`` units (1 layer) for ``reinforce``, ``lstm_ppo`` and ``recurrent_ppo``,
``[width, width]`` MLP for ``ppo``, and a ``width``-wide glimpse encoding for all. The clock covers
training only (rollouts and updates, not construction nor evaluation): the first stretch is a warm-up
that is not timed. One more iteration then runs under ``torch.utils.flop_counter`` (matrix products plus
elementwise products and sums, forward and backward): its FLOPs per env step against the best matrix-product
rate measured on the same device and threads give each algorithm's compute ceiling in env steps/s. This is
a benchmark, not a test: it prints tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages

import envs
from agents.common.devices import DeviceError, check_device, set_threads
from agents.evaluation.metrics import counting_flops
from agents.training.hyperparams import deep_merge, load_hyperparams
from agents.training.registry import resolve_algorithm

ENV = "SyntheticGlimpse-v0"


class _Session:
    stop_requested = False

    def on_iteration(self, num_timesteps: int, metrics: dict[str, float]) -> None:
        pass

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass


def width_overrides(algo: str, width: int) -> dict[str, Any]:
    extractor = {"features_extractor_kwargs": {"glimpse_dim": width, "cell_dim": 16}}
    if algo in ("reinforce", "lstm_ppo"):
        return {"network": {"embed_dim": width, "hidden_size": width, "num_layers": 1, "class_hidden": width}}
    if algo == "recurrent_ppo":
        return {"policy_kwargs": {**extractor, "lstm_hidden_size": width, "n_lstm_layers": 1, "net_arch": [width]}}
    return {"policy_kwargs": {**extractor, "net_arch": [width, width]}}


def measure(
    algo: str, env_kwargs: dict[str, Any], width: int, steps: int, warmup: int, seed: int, n_envs: int | None = None,
    device: str = "cpu", env_id: str = ENV,
) -> tuple[float, float]:
    """Env steps per second of ``algo`` over ``steps`` training steps after ``warmup`` untimed ones, and the
    FLOPs per env step of one more training iteration (counted, not timed). The hyperparameters are always
    those shipped for :data:`ENV`, so another ``env_id`` (a store) changes the data source and nothing else."""
    spec = resolve_algorithm(algo)
    params = deep_merge(load_hyperparams(spec.hyperparams_file, ENV, envs.ENV_IDS), width_overrides(algo, width))
    if n_envs is not None:
        params["n_envs"] = n_envs
    agent = spec.build(env_id, env_kwargs, params, n_envs=params["n_envs"], seed=seed, device=device)
    session = _Session()
    try:
        agent.learn(warmup, session)
        start_steps, tic = agent.num_timesteps, time.perf_counter()
        agent.learn(start_steps + steps, session)
        rate = (agent.num_timesteps - start_steps) / (time.perf_counter() - tic)
        start_steps = agent.num_timesteps
        with counting_flops() as counter:
            agent.learn(start_steps + 1, session)  # one iteration
        return rate, counter.get_total_flops() / (agent.num_timesteps - start_steps)
    finally:
        agent.close()


def make_store(path: Path) -> None:
    """An HMDB-style store of the synthetic benchmark: 240 clips (10 classes x 17 train + 7 test), no core."""
    from envs.store import CORE_FILE
    from envs.synthetic import SyntheticConfig, export_synthetic_store

    export_synthetic_store(path, SyntheticConfig(num_classes=10, train_clips_per_class=17, test_clips_per_class=7))
    (path / CORE_FILE).unlink()  # extracted stores have no ground-truth core


def compare_store(args: argparse.Namespace) -> None:
    """Rates on the store against the synthetic source at the same shapes, measured alternately."""
    from envs.store import FeatureStore

    store = FeatureStore(args.store)
    shapes = {"num_classes": len(store.class_names), "frames": store.frames, "feature_dim": store.feature_dim}
    sources = {"synthetic": (ENV, {"observation_mode": args.observation_mode, **shapes}),
               "store": ("StoreGlimpse-v0", {"observation_mode": args.observation_mode, "data_root": str(args.store)})}
    print(f"store '{args.store}': {len(store)} clips, {shapes}; {args.observation_mode} mode, width {args.width}, "
          f"{args.device}, best of {args.repeats}", flush=True)
    print("\n| algorithm | synthetic env steps/s | store env steps/s | store / synthetic |\n|---|---:|---:|---:|")
    for algo in args.algos:
        best = {name: 0.0 for name in sources}
        for _ in range(args.repeats):
            for name, (env_id, kwargs) in sources.items():
                rate, _ = measure(algo, kwargs, args.width, args.steps, max(args.steps // 10, 2_000), args.seed,
                                  None, args.device, env_id)
                best[name] = max(best[name], rate)
        print(f"| `{algo}` | {best['synthetic']:,.0f} | {best['store']:,.0f} | "
              f"{best['store'] / best['synthetic']:.2f}x |", flush=True)


def matmul_rate(width: int, device: str, seconds: float = 1.0) -> float:
    """The best FLOP/s of float32 matrix products shaped like the agents' (a batch of glimpses through the
    1024-wide input projection, a batch of LSTM steps): a ceiling for any training loop of this width."""
    def finish() -> None:  # GPU products are asynchronous: wait for them before reading the clock
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best = 0.0
    for m, k, n in ((3840, 1024, width), (3840, 2 * width, 4 * width), (128, 2 * width, 4 * width)):
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        torch.mm(a, b)  # warm-up
        finish()
        reps, tic = 0, time.perf_counter()
        while time.perf_counter() - tic < seconds / 3:
            torch.mm(a, b)
            reps += 1
        finish()
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - tic))
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--observation-mode", default="glimpse", choices=("glimpse", "cube"))
    p.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY=VALUE",
                   help="more env arguments, as train_agent.py's (e.g. periphery_dim=0: glimpse mode without the "
                   "periphery)")
    p.add_argument("--width", type=int, default=128, help="LSTM / MLP width shared by all algorithms")
    p.add_argument("--algos", nargs="+", default=["reinforce", "lstm_ppo", "ppo", "recurrent_ppo"])
    p.add_argument("--steps", type=int, default=60_000, help="timed env steps for our agents and ppo")
    p.add_argument("--recurrent-ppo-steps", type=int, default=3_000, help="timed env steps for recurrent_ppo")
    p.add_argument("--our-n-envs", type=int, nargs="*", default=[],
                   help="also measure reinforce / lstm_ppo with these numbers of lockstep episodes")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="torch device of every algorithm (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, default=None, help="compare training on this feature store with the "
                   "synthetic source at its shapes (see the module docstring)")
    p.add_argument("--make-store", action="store_true", help="--store: export an HMDB-style store there if missing")
    p.add_argument("--repeats", type=int, default=2, help="--store: alternate measurements per source (best kept)")
    args = p.parse_args(argv)
    try:
        check_device(args.device)
    except DeviceError as exc:
        p.error(str(exc))
    if args.threads:
        set_threads(args.threads)
    if args.store is not None:
        if args.make_store and not args.store.exists():
            make_store(args.store)
        compare_store(args)
        return
    from agents.training import cli as train_cli

    try:
        env_kwargs = {"observation_mode": args.observation_mode, **train_cli.parse_env_kwargs(args.env_kwargs)}
    except train_cli.CliError as exc:
        p.error(str(exc))
    on_gpu = args.device.startswith("cuda")
    where = torch.cuda.get_device_name() if on_gpu else f"{torch.get_num_threads()} torch threads"
    print(f"{ENV} {env_kwargs}, width {args.width}, {args.device} ({where})", flush=True)
    rates: dict[str, float] = {}
    flops: dict[str, float] = {}
    runs = [(algo, None) for algo in args.algos]
    runs += [(algo, n) for n in args.our_n_envs for algo in args.algos if algo in ("reinforce", "lstm_ppo")]
    for algo, n_envs in runs:
        steps = args.recurrent_ppo_steps if algo == "recurrent_ppo" else args.steps
        name = algo if n_envs is None else f"{algo}, n_envs={n_envs}"
        rates[name], flops[name] = measure(algo, env_kwargs, args.width, steps, max(steps // 10, 2_000), args.seed,
                                           n_envs, args.device)
        print(f"  {name:<24} {rates[name]:>10,.0f} env steps/s, {flops[name] / 1e6:.2f} MFLOP per step", flush=True)
    print("\n| algorithm | env steps/s | x `recurrent_ppo` | x `ppo` | MFLOP per env step |\n|---|---:|---:|---:|---:|")
    for algo, rate in rates.items():
        vs_r = f"{rate / rates['recurrent_ppo']:.0f}x" if "recurrent_ppo" in rates else "-"
        vs_p = f"{rate / rates['ppo']:.1f}x" if "ppo" in rates else "-"
        print(f"| `{algo}` | {rate:,.0f} | {vs_r} | {vs_p} | {flops[algo] / 1e6:.2f} |")

    # The compute ceiling: FLOPs per step against the best matrix-product rate of this device and thread count.
    peak = matmul_rate(args.width, args.device)
    print(f"\nbest float32 matrix-product rate here: {peak / 1e9:.1f} GFLOP/s")
    print("| algorithm | ceiling env steps/s (peak / FLOPs per step) | measured, % of ceiling |\n|---|---:|---:|")
    for algo, rate in rates.items():
        print(f"| `{algo}` | {peak / flops[algo]:,.0f} | {100 * rate * flops[algo] / peak:.0f} % |")
    if "recurrent_ppo" in rates:
        needed = 100 * rates["recurrent_ppo"]
        print(f"100x `recurrent_ppo` = {needed:,.0f} env steps/s", end="")
        for algo in ("reinforce", "lstm_ppo"):
            if algo in flops:
                print(f"; `{algo}` would need {needed * flops[algo] / 1e9:.0f} GFLOP/s", end="")
        print()

if __name__ == "__main__":
    main()
