"""Loss terms, each a small pure function of tensors so it can be checked by hand (tests/test_agents_losses.py).

Shapes: L steps, B episodes, K*K cells. ``mask`` (L, B) is 1 where a step's term counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention_penalty(location_probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Doubly stochastic attention penalty ``sum_i (1 - sum_t p_{t,i})^2`` (Xu et al. 2015, paper's loss),
    averaged over episodes.

    :param location_probs: (L, B, K*K) location distributions p_t.
    :param mask: (L, B) steps whose distribution counts (default: all).
    :return: scalar.
    """
    if mask is not None:
        location_probs = location_probs * mask.unsqueeze(-1)
    per_cell = location_probs.sum(0)  # (B, K*K): total attention each cell received
    return ((1.0 - per_cell) ** 2).sum(-1).mean()


def reinforce_loss(
    log_probs: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """REINFORCE with a baseline (paper eq. 6, Williams 1992): ``-mean_k mean_n log pi(a_n^k) (R_n^k -
    b_n^k)``. The baseline is treated as a constant here (it is fitted by :func:`baseline_loss`). The paper
    sums over steps; we average over the counted steps so the scale does not depend on episode length.

    :param log_probs: (L, B) log-probabilities of the actions taken.
    :param returns: (L, B) cumulative future rewards R_n.
    :param baseline: (L, B) baseline b_n.
    :param mask: (L, B) 1 where the action influenced the reward.
    :return: scalar.
    """
    advantage = (returns - baseline).detach()
    return -(log_probs * advantage * mask).sum() / mask.sum().clamp(min=1)


def baseline_loss(baseline: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the learned baseline, (L, B) each -> scalar."""
    return (((baseline - returns) ** 2) * mask).sum() / mask.sum().clamp(min=1)


def returns_to_go(rewards: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """``R_n = sum_{t>=n} gamma^(t-n) r_t`` for rewards (L, B) -> (L, B)."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates for whole episodes (the state after the last step is terminal).

    :param rewards: (L, B).
    :param values: (L, B) V(s_n).
    :return: advantages (L, B).
    """
    adv = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    next_value = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
        next_value = values[t]
    return adv


def ppo_policy_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO's clipped surrogate, negated (Schulman et al. 2017); all (N,) -> scalar, averaged over the
    entries where ``mask`` is 1 (default: all)."""
    ratio = torch.exp(log_probs - old_log_probs)
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return -surrogate.mean() if mask is None else -masked_mean(surrogate, mask)


def class_cross_entropy(class_logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Cross-entropy of every step's class prediction against its episode's label (the paper's loss).

    :param class_logits: (L, B, C).
    :param labels: (B,) int64, the label the env reported in ``info["label"]``.
    :param mask: (L, B) the steps that count (default: all; early exits leave steps out).
    :return: scalar, averaged over the counted steps.
    """
    steps, batch, classes = class_logits.shape
    per_step = F.cross_entropy(class_logits.reshape(steps * batch, classes), labels.expand(steps, batch).reshape(-1),
                               reduction="none").reshape(steps, batch)
    return per_step.mean() if mask is None else masked_mean(per_step, mask)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` (same shape) is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def categorical_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of categorical distributions given as log-probabilities (..., N) -> (...)."""
    return -(log_probs.exp() * log_probs).sum(-1)


def taken_log_prob(log_probs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Log-probability (...) of the actions (...) int64 under distributions (..., N)."""
    return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def standardize(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(x - mean) / std`` over the counted entries (all by default), for advantages."""
    counted = x if mask is None else x[mask > 0]
    if counted.numel() < 2:
        return x - counted.mean() if counted.numel() else x
    return (x - counted.mean()) / (counted.std() + 1e-8)


def stopping_time_probs(stop_logits: torch.Tensor) -> torch.Tensor:
    """P(the agent stops at step t) (L, B) from [continue, stop] logits (L, B, 2) over whole episodes of L steps:
    ``S_{t-1} h_t`` with ``h_t`` the stop chance at t and ``S_{t-1}`` the chance of not having stopped before;
    the episode ends at step L in any case, so the last row is ``S_{L-1}`` and every column sums to 1."""
    logp = torch.log_softmax(stop_logits, -1)
    survived = torch.cumsum(logp[:-1, :, 0], 0)  # log S_t for t = 1 .. L-1
    log_before = torch.cat([torch.zeros_like(survived[:1]), survived])  # log S_{t-1} for t = 1 .. L
    log_stop_here = torch.cat([logp[:-1, :, 1], torch.zeros_like(logp[-1:, :, 1])])  # log h_t, and 1 at step L
    return (log_before + log_stop_here).exp()


def expected_stop_loss(stop_logits: torch.Tensor, stop_returns: torch.Tensor) -> torch.Tensor:
    """``-mean_B sum_t P(stop at t) G_t``: minus the exact expected return of the stop policy on episodes whose
    return ``G_t`` (L, B) for a stop at every step t is known (``EpisodeRules.stop_returns``). The stop choice
    changes nothing the agent saw before it, so one whole episode scores every stopping time and the gradient
    needs no sampled stops (no variance from them)."""
    return -(stopping_time_probs(stop_logits) * stop_returns.detach()).sum(0).mean()
