"""Sweeps on Ray Tune: algorithms x seeds x env kwargs x hyperparameter overrides, one run folder per trial.

    python -m agents.training.sweep --algos reinforce lstm_ppo --seeds 0 1 2 --out runs/sweep
    python -m agents.training.sweep --spec sweep.yml --out runs/sweep --cpus-per-trial 1
    python -m agents.training.sweep --resume runs/sweep                 # after a kill or Ctrl-C: only unfinished trials
    python -m agents.training.sweep --spec sweep.yml --out /nfs/runs/sweep --address HEAD:6379   # on a cluster

Every trial is one ``train_agent.py`` run (:func:`agents.training.cli.main`, called in a Ray worker)
written as an ordinary run folder ``<out>/<env>__<algo>__<seed>__<tag>/`` that ``evaluate.py`` reads and
``train_agent.py --resume`` continues; each evaluation is reported to Tune as ``eval/accuracy`` (and the other
``eval/*`` metrics) as training goes. Tune keeps its state in ``<out>/.tune`` and this module its spec in
``<out>/.sweep``. Trials run at most ``cpus / cpus_per_trial`` at a time (and ``--max-concurrent``); each uses
``cpus_per_trial`` torch threads. ``--resume`` restores the Tuner: finished trials are kept (a trial whose run
folder has its ``result.json`` returns at once), interrupted ones continue from their last checkpoint.

A spec file (yaml) is one grid, or shared keys plus a list of ``grids`` whose trials are concatenated::

    env: SyntheticGlimpse-v0                 # one env id
    algos: [reinforce, lstm_ppo]
    seeds: [0, 1, 2]
    env_kwargs: [{observation_mode: cube}, {observation_mode: glimpse}]   # variants (default [{}])
    hyperparams: [{}, {learning_rate: 0.0005}]                          # flat overrides (default [{}])
    train: {total_timesteps: 600000, eval_every: 100000, eval_clips: 256} # train_agent.py options

Unknown keys, algorithms, hyperparameters or env kwargs are refused before any trial starts.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.common.cluster import ClusterError, ray_session
from envs import DEFAULT_ENV
from envs.files import LOCK_FILE, FolderInUseError, lock_folder

TUNE_DIR = ".tune"
SWEEP_DIR = ".sweep"
SPEC_FILE = "spec.json"
GRID_KEYS = ("env", "algos", "seeds", "env_kwargs", "hyperparams", "train")
#: train_agent.py options a spec's ``train`` mapping may set (name -> flag)
TRAIN_OPTIONS = {
    "total_timesteps": "--total-timesteps", "n_envs": "--n-envs", "eval_every": "--eval-every",
    "checkpoint_every": "--checkpoint-every", "eval_clips": "--eval-clips", "keep_checkpoints": "--keep-checkpoints",
}  # fmt: skip


class SweepError(ValueError):
    """A bad sweep spec or command line (one line, printed as ``sweep: error: ...``)."""


# ============================================================================================== spec -> trials
def _as_list(value: Any, key: str, where: str, kind: type | tuple[type, ...]) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise SweepError(f"{where}: every entry of {key!r} must be a {names}, got {item!r}")
    return items


def expand(spec: dict[str, Any], where: str = "the sweep spec") -> list[dict[str, Any]]:
    """The trials of a spec (one grid, or shared keys + ``grids``), in a fixed order, each with its run name."""
    unknown = sorted(set(spec) - {*GRID_KEYS, "grids"})
    if unknown:
        raise SweepError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join((*GRID_KEYS, 'grids'))}")
    shared = {k: v for k, v in spec.items() if k != "grids"}
    grids = spec.get("grids") or [{}]
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise SweepError(f"{where}: 'grids' must be a list of mappings")
    trials: list[dict[str, Any]] = []
    for number, grid in enumerate(grids):
        here = f"{where}, grid {number}" if spec.get("grids") else where
        bad = sorted(set(grid) - set(GRID_KEYS))
        if bad:
            raise SweepError(f"{here}: unknown key(s) {', '.join(bad)}; valid: {', '.join(GRID_KEYS)}")
        full = {**shared, **grid}
        if "algos" not in full:
            raise SweepError(f"{here}: no 'algos' (e.g. algos: [reinforce])")
        env = full.get("env", DEFAULT_ENV)
        if not isinstance(env, str):
            raise SweepError(f"{here}: 'env' must be one env id")
        algos = _as_list(full["algos"], "algos", here, str)
        seeds = _as_list(full.get("seeds", [0]), "seeds", here, int)
        env_kwargs = _as_list(full.get("env_kwargs", [{}]), "env_kwargs", here, dict)
        hyperparams = _as_list(full.get("hyperparams", [{}]), "hyperparams", here, dict)
        train = full.get("train") or {}
        if not isinstance(train, dict) or set(train) - set(TRAIN_OPTIONS):
            raise SweepError(f"{here}: 'train' takes {', '.join(TRAIN_OPTIONS)}; got {train!r}")
        _check_numbers(seeds, train, here)
        for algo, kwargs, params, seed in itertools.product(algos, env_kwargs, hyperparams, seeds):
            trials.append({"env": env, "algo": algo, "seed": seed, "env_kwargs": kwargs, "hyperparams": params,
                           "train": train})
    for index, trial in enumerate(trials):
        trial["run_name"] = trial_run_name(trial, index)
    names = [t["run_name"] for t in trials]
    if len(set(names)) != len(names):
        raise SweepError(f"{where}: the same trial is listed twice")
    return trials


#: least value of each ``train`` option (steps between evaluations or checkpoints may be 0: only at the end)
_TRAIN_LEAST = {"total_timesteps": 1, "n_envs": 1, "eval_every": 0, "checkpoint_every": 0, "eval_clips": 1,
                "keep_checkpoints": 1}


def _check_numbers(seeds: list[Any], train: dict[str, Any], where: str) -> None:
    """Seeds in [0, 2**32) and positive step counts, before Ray starts (a trial would only fail later)."""
    from agents.common.checks import count_problem, seed_problem

    problems = [seed_problem("every seed", seed) for seed in seeds]
    problems += [count_problem(TRAIN_OPTIONS[key].lstrip("-").replace("-", "_"), value, _TRAIN_LEAST[key])
                 for key, value in train.items() if value is not None]
    for problem in problems:
        if problem is not None:
            raise SweepError(f"{where}: {problem}")


def trial_run_name(trial: dict[str, Any], index: int) -> str:
    """The run folder name of a trial, tagged ``t<index>-<hash of the settings>``
    (:func:`agents.training.runs.run_name`): stable, so a resumed sweep finds its runs."""
    from agents.training.runs import run_name

    settings = {k: trial[k] for k in ("env", "algo", "seed", "env_kwargs", "hyperparams", "train")}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return run_name(trial["env"], trial["algo"], trial["seed"], tag=f"t{index:03d}-{digest}")


def validate(trials: Sequence[dict[str, Any]]) -> None:
    """Refuse unknown algorithms, hyperparameters and env kwargs before anything runs (raises SweepError)."""
    from agents.training.envutil import EnvBuildError, eval_env_kwargs, make_vector_env, register_envs
    from agents.training.hyperparams import HyperparamError, load_hyperparams
    from agents.training.registry import UnknownAlgorithmError, resolve_algorithm

    register_envs()
    import envs

    checked_envs: set[str] = set()
    checked_params: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for trial in trials:
            env_key = json.dumps([trial["env"], trial["env_kwargs"]], sort_keys=True, default=str)
            if env_key not in checked_envs:
                checked_envs.add(env_key)
                for kwargs in (trial["env_kwargs"], eval_env_kwargs(trial["env_kwargs"])):
                    try:
                        make_vector_env(trial["env"], kwargs, 1).close()
                    except EnvBuildError as exc:
                        raise SweepError(f"trial {trial['run_name']}: {str(exc).splitlines()[0]}") from None
            params_key = json.dumps([trial["env"], trial["algo"], trial["hyperparams"]], sort_keys=True)
            if params_key in checked_params:
                continue
            checked_params.add(params_key)
            try:
                spec = resolve_algorithm(trial["algo"])
                path = Path(tmp) / "override.yml"
                path.write_text(yaml.safe_dump(trial["hyperparams"]))
                params = load_hyperparams(spec.hyperparams_file, trial["env"], envs.ENV_IDS, path)
                spec.check_hyperparams(params, f"the hyperparameters of {trial['algo']} for {trial['env']}")
            except (UnknownAlgorithmError, HyperparamError) as exc:
                raise SweepError(f"trial {trial['run_name']}: {str(exc).splitlines()[0]}") from None


def train_argv(trial: dict[str, Any], out: Path, threads: int, device: str) -> list[str]:
    """The ``train_agent.py`` command line of a fresh trial (its hyperparameter file lives in ``out/.sweep``)."""
    argv = ["--env", trial["env"], "--algo", trial["algo"], "--seed", str(trial["seed"]), "--logdir", str(out),
            "--run-name", trial["run_name"], "--threads", str(threads), "--device", device, "--no-progress"]
    if trial["env_kwargs"]:
        argv += ["--env-kwargs", *(f"{k}={v!r}" for k, v in trial["env_kwargs"].items())]
    if trial["hyperparams"]:
        argv += ["--hyperparams", str(out / SWEEP_DIR / f"{trial['run_name']}.yml")]
    for key, value in trial["train"].items():
        if value is not None:
            argv += [TRAIN_OPTIONS[key], str(value)]
    return argv


# ============================================================================================== one trial
def _tune_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """An ``eval.jsonl`` / ``result.json`` record as Tune metrics (``eval/<name>`` like TensorBoard's tags)."""
    out: dict[str, Any] = {"env_steps": record.get("step", record.get("num_timesteps"))}
    for key, value in record.items():
        if isinstance(value, int | float) and key not in ("step", "num_timesteps"):
            out[f"eval/{key}"] = value
    return out


def run_trial(config: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Train one trial into its run folder (fresh, resumed from its checkpoint, or already finished)."""
    trial, out = config["trial"], Path(config["out"])
    run = out / trial["run_name"]
    result_file = run / "result.json"
    if result_file.is_file():  # finished before an interruption: never redone
        final = json.loads(result_file.read_text())
        report({**_tune_metrics(final), "done_before": True})
        return final
    from agents.training.runs import RunFolder

    folder = RunFolder(run)
    tail = ["--threads", str(config["threads"]), "--no-progress"]
    if folder.latest_checkpoint() is not None:
        argv = ["--resume", str(run), *tail]  # train_agent.py takes the run's write lock
    else:
        if run.exists():  # started, but stopped before its first checkpoint: nothing to keep
            with lock_folder(run, "run folder"):  # unless another process is writing it right now
                for path in run.iterdir():
                    if path.name != LOCK_FILE:
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
        argv = train_argv(trial, out, config["threads"], config["device"])
    from agents.training.cli import main as train

    status = train(argv, on_eval=lambda record: report(_tune_metrics(record)))
    if status != 0 or not result_file.is_file():
        raise RuntimeError(f"train_agent.py {' '.join(argv)} exited with status {status}")
    final = json.loads(result_file.read_text())
    report({**_tune_metrics(final), "done_before": False})
    return final


def _trainable(config: dict[str, Any]) -> None:
    """The Tune function trainable: one trial, reported as it goes."""
    from ray import tune

    run_trial(config, tune.report)


# ============================================================================================== the sweep
def _tuner(out: Path, setup: dict[str, Any], restore: bool) -> Any:
    from ray import tune

    class Lines(tune.Callback):
        """One line per finished or failed trial (Tune's own tables are off)."""

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            accuracy = result.get("eval/accuracy")
            what = "kept (done before)" if result.get("done_before") else "done"
            acc = f", accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""
            print(f"sweep: {trial.config['trial']['run_name']}: {what}{acc}", flush=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"sweep: {trial.config['trial']['run_name']}: FAILED (see {trial.local_path})", flush=True)

    trainable = tune.with_resources(_trainable, {"cpu": setup["cpus_per_trial"], "gpu": setup["gpus_per_trial"]})
    # Killed before Tune first saved its state: start it again (finished run folders are still kept).
    if restore and tune.Tuner.can_restore(out / TUNE_DIR):
        return tune.Tuner.restore(str(out / TUNE_DIR), trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=_param_space(setup, out),
        tune_config=tune.TuneConfig(
            max_concurrent_trials=setup["max_concurrent"] or None, trial_dirname_creator=lambda t: t.trial_id,
            reuse_actors=True,  # a trial's worker serves the next one: torch and the envs are imported once
            trial_name_creator=lambda t: t.config["trial"]["run_name"],
        ),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(out), verbose=0, callbacks=[Lines()],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def _param_space(setup: dict[str, Any], out: Path) -> dict[str, Any]:
    from ray import tune

    device = "cuda" if setup["gpus_per_trial"] else "cpu"
    threads = max(1, int(setup["cpus_per_trial"]))
    return {"trial": tune.grid_search(setup["trials"]), "out": str(out), "threads": threads, "device": device}


def sweep(setup: dict[str, Any], out: Path, restore: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) the sweep; returns one row per trial: run folder, status, final metrics."""
    with ray_session(setup["address"], num_cpus=setup["cpus"], num_gpus=setup["gpus"]):
        grid = _tuner(out, setup, restore).fit()
    rows = []
    for trial in setup["trials"]:
        run = out / trial["run_name"]
        result = run / "result.json"
        final = json.loads(result.read_text()) if result.is_file() else None
        rows.append({"run": str(run), "status": "ok" if final else "failed", **(final or {})})
    del grid
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.training.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", type=Path, default=None, help="sweep spec (yaml; see above)")
    p.add_argument("--env", default=None, help=f"env id (default {DEFAULT_ENV}; with --algos)")
    p.add_argument("--algos", nargs="+", default=None, help="algorithms (instead of --spec)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="seeds (default 0); with --spec, replaces the spec's seeds")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", default=None, help="env kwargs of every trial")
    p.add_argument("--total-timesteps", type=int, default=None, help="env steps of every trial")
    p.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations (reported to Tune)")
    p.add_argument("--eval-clips", type=int, default=None, help="test clips of the periodic evaluations")
    p.add_argument("--out", type=Path, default=None, help="sweep folder: the trials' run folders and Tune's state")
    p.add_argument("--resume", type=Path, default=None, metavar="SWEEP_FOLDER", help="resume an interrupted sweep")
    p.add_argument("--address", default=None,
                   help="Ray head HOST:PORT or auto (default: $RAY_ADDRESS, else local Ray on this machine)")
    p.add_argument("--cpus", type=int, default=None, help="local Ray: CPUs to use (default: all)")
    p.add_argument("--gpus", type=int, default=None, help="local Ray: GPUs to use (default: all)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (= torch threads) per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial (default 0: CPU training)")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials at once at most (default: as resources allow)")
    return p


def _spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec is not None:
        if args.algos or args.env_kwargs or args.env:
            raise SweepError("give either --spec or --env/--algos/--env-kwargs, not both (--seeds replaces a spec's)")
        if not args.spec.is_file():
            raise SweepError(f"--spec {args.spec}: no such file")
        try:
            spec = yaml.safe_load(args.spec.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SweepError(f"--spec {args.spec} is not valid yaml: {str(exc).splitlines()[0]}") from None
        if not isinstance(spec, dict):
            raise SweepError(f"--spec {args.spec} must hold a mapping (env, algos, seeds, ...)")
        if args.seeds:  # e.g. one seed of a multi-seed spec, for a quick table
            spec["seeds"] = args.seeds
            for grid in spec.get("grids") or []:
                if isinstance(grid, dict) and "seeds" in grid:
                    grid["seeds"] = args.seeds
    else:
        if not args.algos:
            raise SweepError("give --spec FILE or --algos NAME ... (e.g. --algos reinforce --seeds 0 1 2)")
        spec = {"algos": args.algos, "seeds": args.seeds or [0]}
        if args.env:
            spec["env"] = args.env
        if args.env_kwargs:
            spec["env_kwargs"] = [_parse_env_kwargs(args.env_kwargs)]
    overrides = {k: getattr(args, k) for k in ("total_timesteps", "eval_every", "eval_clips") if getattr(args, k)
                 is not None}
    if overrides:  # the command line wins over the spec's shared train options (expand checks the types)
        train = spec.get("train") or {}
        spec["train"] = {**train, **overrides} if isinstance(train, dict) else train
    return spec


def _parse_env_kwargs(items: list[str]) -> dict[str, Any]:
    from agents.training.cli import CliError, parse_env_kwargs

    try:
        return parse_env_kwargs(items)
    except CliError as exc:
        raise SweepError(str(exc)) from None


def _setup(args: argparse.Namespace) -> tuple[dict[str, Any], Path, bool]:
    """(setup, sweep folder, restore?) from the command line; writes nothing before the spec is valid."""
    for flag, value in (("--cpus-per-trial", args.cpus_per_trial), ("--max-concurrent", args.max_concurrent + 1),
                        ("--cpus", args.cpus or 1), ("--gpus", (args.gpus or 0) + 1)):
        if value <= 0:
            raise SweepError(f"{flag} must be positive")
    if args.resume is not None:
        saved = args.resume / SWEEP_DIR / SPEC_FILE
        if not saved.is_file() or not (args.resume / TUNE_DIR).is_dir():
            raise SweepError(f"--resume {args.resume}: not a sweep folder (no {SWEEP_DIR}/{SPEC_FILE} or {TUNE_DIR})")
        setup = json.loads(saved.read_text())
        setup["address"] = args.address  # where to run may change; what to run may not
        return setup, args.resume.resolve(), True
    if args.out is None:
        raise SweepError("give --out SWEEP_FOLDER (or --resume SWEEP_FOLDER)")
    out = args.out.resolve()
    if (out / TUNE_DIR).exists():
        raise SweepError(f"{out} already holds a sweep; continue it with --resume {args.out}, or pick another --out")
    trials = expand(_spec_from_args(args))
    validate(trials)
    setup = {"trials": trials, "address": args.address, "cpus": args.cpus, "gpus": args.gpus,
             "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
             "max_concurrent": args.max_concurrent}
    (out / SWEEP_DIR).mkdir(parents=True, exist_ok=True)
    for trial in trials:
        if trial["hyperparams"]:
            (out / SWEEP_DIR / f"{trial['run_name']}.yml").write_text(yaml.safe_dump(trial["hyperparams"]))
    (out / SWEEP_DIR / SPEC_FILE).write_text(json.dumps(setup, indent=1) + "\n")
    return setup, out, False


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the sweep the command line ``argv`` describes; returns the exit status (0 every trial
    finished, 1 some failed, 2 a bad spec or command line, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    out = args.resume or args.out
    try:
        setup, out, restore = _setup(args)
        lock = lock_folder(out, "sweep folder")  # one driver per sweep folder
        print(f"sweep: {len(setup['trials'])} trial(s) -> {out}" + (" (resuming)" if restore else ""), flush=True)
        with lock:
            rows = sweep(setup, out, restore)
    except (SweepError, ClusterError, FolderInUseError) as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweep: interrupted; continue with: python -m agents.training.sweep --resume {out}", file=sys.stderr)
        return 130
    failed = [r for r in rows if r["status"] != "ok"]
    for row in rows:
        accuracy = f"accuracy {row['accuracy']:.4f}" if row["status"] == "ok" else "FAILED"
        print(f"  {row['run']}: {accuracy}")
    print(f"sweep: {len(rows) - len(failed)} of {len(rows)} trial(s) finished; compare them with:\n"
          f"  python evaluate.py --compare {out}/*" + (f"\nresume the rest with: python -m agents.training.sweep "
                                                      f"--resume {out}" if failed else ""), flush=True)
    return 0 if not failed else 1


def console_main(argv: Sequence[str] | None = None) -> int:
    """:func:`main` as a command (``python -m agents.training.sweep``, ``glimpse-sweep``): local Ray's processes
    die with the driver, even on kill -9."""
    from agents.common.children import reap_children_on_exit

    reap_children_on_exit()
    return main(argv)


if __name__ == "__main__":
    sys.exit(console_main())
