"""Train one algorithm on one glimpse env; everything lands in one run folder. The command line of
``train_agent.py``, ``glimpse-train`` and ``python -m agents.training.cli`` (the same :func:`main`).

    python train_agent.py                                        # the paper's agent on the synthetic benchmark
    python train_agent.py --env HMDB51Glimpse-v0 --algo reinforce --env-kwargs split=1
    python train_agent.py --algo ppo --env-kwargs observation_mode=glimpse num_classes=10
    python train_agent.py --algo sb3_contrib:TRPO                # any SB3-compatible class
    python train_agent.py --resume runs/SyntheticGlimpse-v0__reinforce__0__20250101-120000

Algorithms (``--algo``) come from ``agents.training.registry``; their hyperparameter defaults from
``agents/training/hyperparams/<algo>.yml`` (keyed by env id; ``--hyperparams my.yml`` overrides, flat or keyed).
``--total-timesteps`` counts environment steps for every algorithm. The run folder
``<logdir>/<env>__<algo>__<seed>__<time>/`` holds ``config.json``, TensorBoard events, ``checkpoints/``, the
final model, ``eval.jsonl`` and ``result.json``. Ctrl-C writes a checkpoint that ``--resume`` continues
from (bit-for-bit for our agents on CPU; not for SB3 algorithms, whose checkpoints keep no RNG state).
"""

from __future__ import annotations

import argparse
import ast
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs import DEFAULT_ENV

EVAL_ENVS = 64


class CliError(Exception):
    """A user error: printed as ``train_agent.py: error: <message>``, exit status 2."""


def parse_env_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> kwargs. Values are Python literals (``5``, ``0.5``, ``None``, ``True``,
    ``'text'``); anything else is kept as a string (``observation_mode=glimpse``)."""
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CliError(
                f"malformed --env-kwargs entry {item!r}: expected key=value with a Python identifier as key, "
                "e.g. --env-kwargs observation_mode=glimpse glimpse_budget=5"
            )
        if key in kwargs:
            raise CliError(f"--env-kwargs sets {key!r} twice")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        kwargs[key] = value
    return kwargs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_agent.py",
        description="Train any algorithm on a glimpse env (see the module docstring and README).",
    )
    p.add_argument("--env", default=None, help=f"env id (default {DEFAULT_ENV})")
    p.add_argument("--algo", default=None, help="algorithm name or module:Class (default reinforce)")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", help="env constructor arguments")
    p.add_argument("--seed", type=int, default=None, help="seed, in [0, 2**32) (default 0)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: from the hyperparameters)")
    p.add_argument("--total-timesteps", type=int, default=None, help="env steps (default: from the hyperparameters)")
    p.add_argument("--hyperparams", type=Path, default=None, help="yaml overriding the algorithm's defaults")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--logdir", type=Path, default=Path("runs"), help="folder of run folders (default runs)")
    p.add_argument("--run-name", default=None, help="run folder name (default <env>__<algo>__<seed>__<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_FOLDER",
                   help="continue a run from its newest intact checkpoint. Our agents resume bit-for-bit (their "
                        "RNG states are checkpointed); SB3 algorithms do not: an SB3 checkpoint keeps the model "
                        "and optimiser but not the RNG states nor the envs' episodes in progress, so the resumed "
                        "run is not the uninterrupted one")
    p.add_argument("--eval-every", type=int, default=None,
                   help="env steps between test evaluations (0: only at the end)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="env steps between checkpoints (default: --eval-every)")
    p.add_argument("--eval-clips", type=int, default=None, help="evaluate on the first N test clips only (default all)")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="periodic checkpoints kept (default 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0: torch's default, all cores). One thread is fastest for the "
                        "small synthetic networks and avoids oversubscribing cores shared with other runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad numbers before anything is built (a :class:`CliError` per problem, one line)."""
    from agents.common.checks import count_problem, seed_problem

    checks = [("--n-envs", args.n_envs, 1), ("--total-timesteps", args.total_timesteps, 1),
              ("--eval-every", args.eval_every, 0), ("--checkpoint-every", args.checkpoint_every, 0),
              ("--eval-clips", args.eval_clips, 1), ("--keep-checkpoints", args.keep_checkpoints, 1),
              ("--threads", args.threads, 0)]
    problems = [count_problem(flag, value, least) for flag, value, least in checks if value is not None]
    if args.seed is not None:
        problems.append(seed_problem("--seed", args.seed))
    for problem in problems:
        if problem is not None:
            raise CliError(problem)


def _eval_env(env_id: str, env_kwargs: dict[str, Any], n_clips_hint: int | None) -> Any:
    from agents.training.envutil import eval_env_kwargs, make_vector_env

    n = EVAL_ENVS if n_clips_hint is None else min(EVAL_ENVS, n_clips_hint)
    return make_vector_env(env_id, eval_env_kwargs(env_kwargs), n)


def _config(args: argparse.Namespace, argv: list[str], **fields: Any) -> dict[str, Any]:
    from agents.training.runs import CONFIG_FORMAT, git_commit, package_versions

    return {
        "format": CONFIG_FORMAT,
        **fields,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "argv": argv,
        "versions": {"python": platform.python_version(), **package_versions()},
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumes": [],
    }


def start(args: argparse.Namespace, argv: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """A fresh run: validate everything, build the algorithm, then create the run folder."""
    from agents.common.devices import check_device
    from agents.training.envutil import register_envs
    from agents.training.hyperparams import load_hyperparams
    from agents.training.registry import resolve_algorithm
    from agents.training.runs import RunFolder, run_name

    register_envs()
    import envs

    env_id = args.env or DEFAULT_ENV
    algo_name = args.algo or "reinforce"
    seed = 0 if args.seed is None else args.seed
    device = check_device(args.device or "cpu")
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    spec = resolve_algorithm(algo_name)
    params = load_hyperparams(spec.hyperparams_file, env_id, envs.ENV_IDS, args.hyperparams)
    where = f"the hyperparameters of {algo_name} for {env_id}"
    if args.hyperparams:
        where += f" (with {args.hyperparams})"
    spec.check_hyperparams(params, where)
    n_envs = args.n_envs or int(params.get("n_envs", 1))
    total = args.total_timesteps if args.total_timesteps is not None else int(params.get("n_timesteps", 100_000))
    eval_every = args.eval_every if args.eval_every is not None else int(params.get("eval_every", 0))
    checkpoint_every = args.checkpoint_every if args.checkpoint_every is not None else eval_every
    if total < 1:
        raise CliError(f"n_timesteps is {total} in {where}: training needs at least one env step; set it > 0 "
                       "or pass --total-timesteps N")
    # config.json records the values in force
    params.update(n_envs=n_envs, n_timesteps=total, eval_every=eval_every)
    algo = spec.build(env_id, env_kwargs, params, n_envs=n_envs, seed=seed, device=device)
    run: RunFolder | None = None
    try:
        eval_env = _eval_env(env_id, env_kwargs, args.eval_clips)
        run = RunFolder(args.logdir / (args.run_name or run_name(env_id, algo_name, seed)))
        fields: dict[str, Any] = {
            "env_id": env_id, "env_kwargs": env_kwargs, "algo": algo_name,
            "algo_class": f"{spec.cls.__module__}.{spec.cls.__qualname__}", "seed": seed, "n_envs": n_envs,
            "total_timesteps": total, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
            "eval_clips": args.eval_clips, "device": device, "hyperparams": params,
            "model_file": algo.model_filename,
            "data": eval_env.unwrapped.source.identity(),  # evaluate.py refuses other data
        }
        if hasattr(algo, "model_info"):
            fields["model"] = algo.model_info()
        run.create(_config(args, argv, **fields))
    except BaseException:
        algo.close()
        if run is not None:
            run.unlock()
        raise
    return algo, eval_env, {"run": run, "total": total, "eval_every": eval_every, "checkpoint_every": checkpoint_every}


def resume(args: argparse.Namespace, argv: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """Continue a run folder from its latest checkpoint, with its own recorded settings."""
    from agents.common.devices import check_device
    from agents.training.registry import resolve_algorithm
    from agents.training.runs import RunFolder, write_json

    run = RunFolder(args.resume)
    if not run.path.is_dir():
        raise CliError(f"--resume {args.resume}: no such run folder")
    # Before anything is read: a live run prunes and writes checkpoints, and a second writer would race it.
    run.lock()
    try:
        return _resume_locked(run, args, argv, check_device, resolve_algorithm, write_json)
    except BaseException:
        run.unlock()
        raise


def _resume_locked(run: Any, args: argparse.Namespace, argv: list[str], check_device: Any, resolve_algorithm: Any,
                   write_json: Any) -> tuple[Any, Any, dict[str, Any]]:
    from agents.training.runs import RunFolderError

    config = run.read_config()
    for flag, given, recorded in (("--env", args.env, config["env_id"]), ("--algo", args.algo, config["algo"])):
        if given is not None and given != recorded:
            raise CliError(
                f"--resume {run.path} is a run of {config['algo']} on {config['env_id']}, but {flag} {given} was "
                f"given; resume without {flag}, or start a new run"
            )
    fixed = {"--env-kwargs": args.env_kwargs, "--hyperparams": args.hyperparams, "--seed": args.seed,
             "--n-envs": args.n_envs, "--run-name": args.run_name}
    changed = [flag for flag, value in fixed.items() if value is not None]
    if changed:
        raise CliError(f"{', '.join(changed)} cannot change when resuming (the run's config.json fixes them)")
    if not run.checkpoints():
        raise RunFolderError(
            f"{run.path} has no checkpoint to resume from: its training stopped before the first one "
            f"(checkpoints/ is empty). Start it again with `python train_agent.py {' '.join(config.get('argv', []))}`"
            .rstrip() + ".")
    spec = resolve_algorithm(config["algo"])
    device = check_device(args.device or config.get("device", "cpu"))

    def build() -> Any:
        return spec.build(config["env_id"], config["env_kwargs"], dict(config["hyperparams"]),
                          n_envs=config["n_envs"], seed=config["seed"], device=device)

    algo, checkpoint = _load_newest_intact(run, build)
    try:
        total = args.total_timesteps if args.total_timesteps is not None else int(config["total_timesteps"])
        eval_every = args.eval_every if args.eval_every is not None else int(config["eval_every"])
        checkpoint_every = (
            args.checkpoint_every if args.checkpoint_every is not None else int(config["checkpoint_every"])
        )
        eval_env = _eval_env(config["env_id"], config["env_kwargs"], config.get("eval_clips"))
        config["total_timesteps"] = total
        config["resumes"].append({"argv": argv, "from": checkpoint.name, "step": algo.num_timesteps,
                                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json(run.config_path, config)
    except BaseException:
        algo.close()
        raise
    args.eval_clips = config.get("eval_clips")
    return algo, eval_env, {"run": run, "total": total, "eval_every": eval_every, "checkpoint_every": checkpoint_every}


def _load_newest_intact(run: Any, build: Any) -> tuple[Any, Path]:
    """A freshly built algorithm with the newest checkpoint of ``run`` that loads (a kill during a save, a full
    disk or a bad copy can leave the newest one damaged). A damaged one is renamed ``*.damaged`` (so neither
    pruning nor a later resume takes it) and the fall-back is printed."""
    from agents.training.runs import FormatError, RunFolderError

    damaged: list[str] = []
    for _, checkpoint in reversed(run.checkpoints()):
        algo = build()
        try:
            algo.load_checkpoint(checkpoint)
        except FormatError:  # written by another version: not damaged, so keep it and say so
            algo.close()
            raise
        except Exception as exc:
            algo.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            for side in checkpoint.parent.glob(checkpoint.stem + ".*"):
                side.rename(side.with_name(side.name + ".damaged"))
            damaged.append(checkpoint.name)
            print(f"train_agent.py: checkpoint {checkpoint} is damaged ({type(exc).__name__}: {reason[:160]}); "
                  f"renamed it to {checkpoint.name}.damaged", file=sys.stderr, flush=True)
            continue
        if damaged:
            print(f"train_agent.py: resuming from {checkpoint.name}, the newest intact checkpoint "
                  f"(step {algo.num_timesteps})", file=sys.stderr, flush=True)
        return algo, checkpoint
    raise RunFolderError(f"every checkpoint of {run.path} is damaged ({', '.join(damaged)}; renamed *.damaged): "
                         "nothing to resume from. Start the run again.")


def main(argv: list[str] | None = None, on_eval: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Train as the command line ``argv`` says (default ``sys.argv[1:]``); returns the exit status (0 done,
    2 a user error, 130 stopped with a checkpoint). ``on_eval`` receives every evaluation record: a sweep's
    trial (``agents.training.sweep``) calls this in its Ray worker and reports them to Tune."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        from agents.common.devices import set_threads

        set_threads(args.threads)
        return _train(args, argv, on_eval)
    except CliError as exc:
        print(f"train_agent.py: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from agents.algorithms.sb3 import UnsupportedActionSpaceError
        from agents.common.devices import DeviceError
        from agents.training.envutil import EnvBuildError, IncompatibleEnvError
        from agents.training.hyperparams import HyperparamError
        from agents.training.registry import UnknownAlgorithmError
        from agents.training.runs import RunFolderError
        from envs.files import FolderInUseError
        from envs.sources import InvalidFeaturesError
        from envs.store import StoreError

        known = (EnvBuildError, IncompatibleEnvError, HyperparamError, UnknownAlgorithmError, RunFolderError,
                 UnsupportedActionSpaceError, DeviceError, InvalidFeaturesError, StoreError, FolderInUseError)
        if not isinstance(exc, known):
            raise
        print(" ".join(["train_agent.py: error:", str(exc), *getattr(exc, "__notes__", [])]), file=sys.stderr)
        return 2


def _train(args: argparse.Namespace, argv: list[str], on_eval: Callable[[dict[str, Any]], None] | None) -> int:
    from agents.training.session import TrainingSession

    algo, eval_env, plan = resume(args, argv) if args.resume is not None else start(args, argv)
    run = plan["run"]
    print(f"run folder: {run.path}", flush=True)  # before the progress bar draws
    try:
        session = TrainingSession(
            algo, run, total_timesteps=plan["total"], eval_every=plan["eval_every"],
            checkpoint_every=plan["checkpoint_every"], eval_env=eval_env, eval_max_clips=args.eval_clips,
            keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress, on_eval=on_eval,
        )
        final = session.train()
    except Exception as exc:
        if args.resume is None and not run.checkpoints():
            _remove_unstarted(run)  # nothing to resume: leave no half-made run folder behind
            exc.add_note(f"(no run was started: {run.path} was removed)")
        raise
    finally:
        algo.close()
        eval_env.close()
        run.unlock()  # a sweep's worker trains its next trial in this process
    if final is None:
        print(f"stopped at {algo.num_timesteps} env steps; checkpoint written. Continue with:\n"
              f"  python train_agent.py --resume {run.path}", flush=True)
        return 130
    print(
        f"test accuracy {final.accuracy:.4f}  focus accuracy {final.focus_accuracy:.4f}  mean reward "
        f"{final.mean_reward:.3f}  glimpses/video {final.glimpses_per_video:.1f}  ({final.n_clips} clips, "
        f"{algo.num_timesteps} env steps)\nrun folder: {run.path}",
        flush=True,
    )
    return 0


def _remove_unstarted(run: Any) -> None:
    """Delete a fresh run folder that holds no checkpoint: config.json, event files, empty checkpoints/."""
    import shutil

    shutil.rmtree(run.path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
