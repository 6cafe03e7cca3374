"""A training session: drives an :class:`~agents.algorithms.base.Algorithm` and owns what every run shares -
TensorBoard logging, periodic test-set evaluation, checkpoints, the progress bar and Ctrl-C.

Ctrl-C sets a flag; the algorithm finishes its current iteration (ours) or step (SB3), then the session
writes a checkpoint and returns. A second Ctrl-C aborts at once. Because our agents only stop between
iterations and everything they draw is checkpointed, ``--resume`` continues bit-for-bit.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.algorithms.base import Algorithm
from agents.evaluation import EvalResult, evaluate_policy
from agents.training.runs import RESULTS_FILE, RunFolder, write_json

#: evaluation metric -> TensorBoard tag
EVAL_TAGS = {
    "accuracy": "eval/accuracy",
    "focus_accuracy": "eval/focus_accuracy",
    "mean_reward": "eval/mean_reward",
    "glimpses_per_video": "eval/glimpses_per_video",
    "last_step_accuracy": "eval/last_step_accuracy",
}


class TrainingSession:
    """One stretch of training of ``algo`` into ``run`` (a fresh run or a resumed one).

    :param total_timesteps: train until the algorithm has taken this many env steps.
    :param eval_every: env steps between evaluations (0: only at the end).
    :param checkpoint_every: env steps between checkpoints (0: only on Ctrl-C).
    :param eval_env: batched vector env on the test subset.
    :param eval_max_clips: evaluate on the first clips only (None: all).
    :param keep_checkpoints: periodic checkpoints kept on disk.
    :param progress: show a tqdm bar.
    :param on_eval: called with every evaluation's ``eval.jsonl`` record (a sweep reports it to Ray Tune).
    """

    def __init__(
        self,
        algo: Algorithm,
        run: RunFolder,
        *,
        total_timesteps: int,
        eval_every: int,
        checkpoint_every: int,
        eval_env: Any,
        eval_max_clips: int | None = None,
        keep_checkpoints: int = 3,
        progress: bool = True,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.algo, self.run = algo, run
        self.on_eval = on_eval
        self.total_timesteps = total_timesteps
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.eval_env, self.eval_max_clips = eval_env, eval_max_clips
        self.keep_checkpoints = keep_checkpoints
        self.start_steps = algo.num_timesteps
        # A resumed run rewrites everything logged after its checkpoint.
        self.writer = SummaryWriter(log_dir=str(run.path), purge_step=self.start_steps or None)
        run.truncate_evals(self.start_steps)
        self._next_eval = self._next_multiple(eval_every)
        self._next_checkpoint = self._next_multiple(checkpoint_every)
        self._stop = False
        self._bar = tqdm(
            total=total_timesteps, initial=self.start_steps, unit="step", unit_scale=True,
            dynamic_ncols=True, disable=not progress, desc=run.path.name,
        )
        self._started = time.perf_counter()
        self._eval_seconds = 0.0
        self.last_eval: EvalResult | None = None

    def _next_multiple(self, every: int) -> float:
        return (self.start_steps // every + 1) * every if every > 0 else math.inf

    # ------------------------------------------------------------------ Session protocol
    @property
    def stop_requested(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        self._stop = True

    def on_iteration(self, num_timesteps: int, metrics: dict[str, float]) -> None:
        self.log(num_timesteps, metrics)
        if num_timesteps > self._bar.total:  # the last iteration overshoots: keep the bar a percentage
            self._bar.total = num_timesteps
        self._bar.update(num_timesteps - self._bar.n)
        if num_timesteps >= self._next_eval:
            self.evaluate(num_timesteps)
            self._next_eval = (num_timesteps // self.eval_every + 1) * self.eval_every
        if num_timesteps >= self._next_checkpoint:
            self.checkpoint(num_timesteps)
            self._next_checkpoint = (num_timesteps // self.checkpoint_every + 1) * self.checkpoint_every

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for tag, value in metrics.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, value, step)

    # ------------------------------------------------------------------ work
    def evaluate(self, step: int) -> EvalResult:
        tic = time.perf_counter()
        result = evaluate_policy(self.algo.policy(), self.eval_env, max_clips=self.eval_max_clips)
        self._eval_seconds += time.perf_counter() - tic
        metrics = result.metrics()
        self.log(step, {tag: metrics[k] for k, tag in EVAL_TAGS.items()})
        self.writer.flush()
        elapsed = time.perf_counter() - self._started
        record = {"step": step, "wall_time_s": elapsed, "train_time_s": elapsed - self._eval_seconds, **metrics}
        self.run.append_eval(record)
        if self.on_eval is not None:
            self.on_eval(record)
        self.last_eval = result
        self._bar.set_postfix(acc=f"{result.accuracy:.3f}", focus=f"{result.focus_accuracy:.3f}")
        return result

    def checkpoint(self, step: int) -> None:
        self.algo.save_checkpoint(self.run.checkpoint_path(step, self.algo.checkpoint_suffix))
        self.run.prune_checkpoints(self.keep_checkpoints)

    def train(self) -> EvalResult | None:
        """Train to ``total_timesteps``; then save the final model, evaluate and write results.json.
        Returns the final evaluation, or None when Ctrl-C stopped the run (a checkpoint is written)."""
        try:
            with _graceful_interrupt(self):
                self.algo.learn(self.total_timesteps, self)
            steps = self.algo.num_timesteps
            if self._stop:
                self.checkpoint(steps)
                return None
            self.algo.save_model(self.run.path / self.algo.model_filename)
            final = self.last_eval if self.last_eval is not None and self._evaluated_at(steps) else self.evaluate(steps)
            self.checkpoint(steps)
            wall = time.perf_counter() - self._started
            write_json(
                self.run.path / RESULTS_FILE,
                {"num_timesteps": steps, "wall_time_s": wall, "train_time_s": wall - self._eval_seconds,
                 **final.metrics()},
            )
            return final
        finally:
            self._bar.close()
            self.writer.close()

    def _evaluated_at(self, step: int) -> bool:
        evals = self.run.read_evals()
        return bool(evals) and evals[-1]["step"] == step


@contextmanager
def _graceful_interrupt(session: TrainingSession) -> Iterator[None]:
    """First SIGINT: ask the session to stop after the current iteration. Second: KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if session.stop_requested:
            raise KeyboardInterrupt
        session.request_stop()
        print("\nInterrupted: finishing the current iteration and writing a checkpoint "
              "(Ctrl-C again to abort without one).", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
