"""Baselines whose class head learns by backpropagation only (cross-entropy at every step).

All use the same :class:`~agents.algorithms.network.GlimpseNetwork` and the same class head as ``reinforce``, so the
way they attend is the only difference:

- ``soft_attention``: Sharma, Kiros & Salakhutdinov (2015), the paper's "baseline attention". The input of
  step t is the expectation ``sum_i a_{t,i} X_{t,i}`` under a softmax ``a_t`` that the location head gave
  at step t-1 (uniform at the first step), trained end to end with the doubly stochastic penalty. As in
  Sharma et al., the location softmax is computed from the memory state alone (``a_t = softmax(W h_{t-1})``:
  the cells' content reaches it only through what the LSTM remembers). The cell sent to the env, which only
  counts towards focus accuracy, is the argmax of the attention the next step will use.
- ``mean_pool``: the LSTM reads the mean of all 49 cells (no attention). Its env glimpse stays on the
  centre cell, so its focus accuracy means nothing.
- ``random`` / ``center`` / ``oracle``: hard glimpses placed by a fixed rule (uniform random cell, the
  centre cell, a ground-truth core cell of the synthetic benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agents.algorithms.base import EpisodeAlgorithm, EpisodeHyperparams
from agents.algorithms.losses import attention_penalty
from agents.algorithms.rollout import RolloutBatch


@dataclass
class SupervisedHyperparams(EpisodeHyperparams):
    """:class:`EpisodeHyperparams` plus

    :param attention_penalty: lambda of the doubly stochastic penalty on the soft attention weights
        (``soft_attention`` only; Sharma et al.'s public code used 0).
    """

    attention_penalty: float


class SupervisedAgent(EpisodeAlgorithm):
    """Cross-entropy on every step's class prediction; attention as set by the subclass."""

    hyperparams_class = SupervisedHyperparams
    explore = False
    hp: SupervisedHyperparams

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        obs = {k: v.to(self.device) for k, v in batch.obs.items()}
        out, _ = self.network(obs)
        steps, n = batch.length, batch.num_episodes
        labels = batch.labels.to(self.device).expand(steps, n)  # (L, B)
        ce = F.cross_entropy(out.class_logits.reshape(steps * n, -1), labels.reshape(-1))
        loss = ce
        metrics = {"cross_entropy": ce.item()}
        if self.input_mode == "soft":
            penalty = attention_penalty(out.weights)
            loss = loss + self.hp.attention_penalty * penalty
            metrics["attention_penalty"] = penalty.item()
        metrics["loss"] = loss.item()
        metrics.update(self.step_optimizer(loss))
        with torch.no_grad():
            metrics["step_accuracy"] = float((out.class_logits.argmax(-1) == labels).float().mean())
        return metrics


class SoftAttention(SupervisedAgent):
    """Soft attention over the 49 cells (Sharma et al. 2015)."""

    input_mode = "soft"
    content_attention = False


class MeanPool(SupervisedAgent):
    """LSTM on the mean of all cells."""

    input_mode = "mean"
    location_rule = "center"


class RandomGlimpse(SupervisedAgent):
    """Hard glimpses at uniformly random cells."""

    location_rule = "random"


class CenterGlimpse(SupervisedAgent):
    """Hard glimpses always at the centre cell."""

    location_rule = "center"


class OracleGlimpse(SupervisedAgent):
    """Hard glimpses on a ground-truth core cell (synthetic benchmark only)."""

    location_rule = "oracle"
