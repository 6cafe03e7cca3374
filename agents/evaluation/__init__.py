"""How a policy is scored: the home of evaluation.

- :mod:`~agents.evaluation.episodes`: the one evaluation loop (:func:`play_clips`, lockstep batches of whole
  episodes) and the clip prediction rule (per-step softmax summed over the clip; why: its docstring);
  :func:`evaluate_policy` is training's periodic test evaluation over the same loop.
- :mod:`~agents.evaluation.metrics`: pure scores of the clips played: accuracy, top-k, confusion, per class, the
  ActivityNet evaluator (mAP / Hit@k), cells read, FLOPs and latency (:func:`score`, :func:`measure_cost`).
- :mod:`~agents.evaluation.run`: a run folder as evaluation sees it (config, policy, training log, data check).
- :mod:`~agents.evaluation.report`: one run -> ``eval.json``, ``eval.md``, images, TensorBoard summaries.
- :mod:`~agents.evaluation.compare`: many runs -> leaderboard and accuracy-vs-FLOPs plot; HMDB-51 splits.
- :mod:`~agents.evaluation.statistics`: seeds of one setting -> mean, IQM and 95 % intervals (rliable).
- :mod:`~agents.evaluation.images`: attention maps (OpenCV) and charts (matplotlib).
- :mod:`~agents.evaluation.probes`: linear probes of a feature store (how much class information its cells hold).
- :mod:`~agents.evaluation.cli`: the command line (``evaluate.py``, ``glimpse-evaluate``).

Only the evaluation loop is imported here (training needs it; the rest loads torch's FLOP counter, TensorBoard,
matplotlib on first use).
"""

from agents.evaluation.episodes import AGGREGATION, ClipEpisodes, EvalResult, choose_clips, evaluate_policy, play_clips

__all__ = ["AGGREGATION", "ClipEpisodes", "EvalResult", "choose_clips", "evaluate_policy", "play_clips"]
