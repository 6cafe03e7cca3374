"""Loss terms against hand-computed values on tiny batches (agents/algorithms/losses.py,
agents/algorithms/reinforce.py)."""

from __future__ import annotations

import math

import pytest
import torch

from agents.algorithms.losses import (
    attention_penalty,
    baseline_loss,
    class_cross_entropy,
    expected_stop_loss,
    gae,
    ppo_policy_loss,
    reinforce_loss,
    returns_to_go,
    stopping_time_probs,
)
from agents.algorithms.reinforce import location_step_mask


def test_attention_penalty_by_hand() -> None:
    # L=2 steps, B=1 episode, 3 cells. Column sums 0.6, 1.05, 0.35:
    # (1-0.6)^2 + (1-1.05)^2 + (1-0.35)^2 = 0.16 + 0.0025 + 0.4225 = 0.585
    p = torch.tensor([[[0.5, 0.25, 0.25]], [[0.1, 0.8, 0.1]]])
    assert attention_penalty(p).item() == pytest.approx(0.585)


def test_attention_penalty_mask_and_batch_mean() -> None:
    p = torch.tensor([[[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]], [[0.1, 0.8, 0.1], [1.0, 0.0, 0.0]]])  # (2, 2, 3)
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # episode 0 keeps step 0 only: 0.25 + 0.5625 + 0.5625 = 1.375; episode 1: (1-2)^2 + 1 + 1 = 3
    assert attention_penalty(p, mask).item() == pytest.approx((1.375 + 3.0) / 2)


def test_attention_penalty_is_zero_when_every_cell_gets_one_unit() -> None:
    p = torch.eye(4).unsqueeze(1)  # 4 steps, each on a different one of 4 cells
    assert attention_penalty(p).item() == pytest.approx(0.0)


def test_reinforce_loss_by_hand_and_gradient() -> None:
    # L=2, B=2. Advantages R - b: [[1, -2], [0.5, 4]]; the second step of episode 1 is masked out.
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.2, 0.9]])).requires_grad_()
    returns = torch.tensor([[2.0, -1.0], [2.0, 5.0]])
    baseline = torch.tensor([[1.0, 1.0], [1.5, 1.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss = reinforce_loss(logp, returns, baseline, mask)
    expected = -(math.log(0.5) * 1.0 + math.log(0.25) * -2.0 + math.log(0.2) * 0.5) / 3
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # d loss / d log p = -(R - b) * mask / 3; the baseline gets no gradient from this term.
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, 2.0], [-0.5, 0.0]]) / 3)
    assert baseline.grad is None or torch.count_nonzero(baseline.grad) == 0


def test_baseline_loss_by_hand() -> None:
    b = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    r = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert baseline_loss(b, r, mask).item() == pytest.approx((1 + 4 + 1) / 3)


def test_returns_to_go_and_gae() -> None:
    rewards = torch.tensor([[0.0], [0.0], [3.0]])
    assert returns_to_go(rewards).flatten().tolist() == [3.0, 3.0, 3.0]
    assert returns_to_go(rewards, gamma=0.5).flatten().tolist() == [0.75, 1.5, 3.0]
    values = torch.tensor([[1.0], [2.0], [2.5]])
    # lambda = 1: Monte-Carlo return minus value
    assert torch.allclose(gae(rewards, values, 1.0, 1.0), returns_to_go(rewards) - values)
    # lambda = 0: one-step TD errors r + V(next) - V, with V(after the end) = 0
    assert torch.allclose(gae(rewards, values, 1.0, 0.0), torch.tensor([[1.0], [0.5], [0.5]]))


def test_ppo_policy_loss_clips() -> None:
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.9, 0.1]))  # ratios 1.8 and 0.2
    adv = torch.tensor([1.0, -1.0])
    # positive advantage: min(1.8, 1.2) = 1.2; negative: min(-0.2, -0.8) = -0.8 -> loss = -(1.2 - 0.8) / 2
    assert ppo_policy_loss(new, old, adv, 0.2).item() == pytest.approx(-0.2)


def test_location_step_mask_drops_last_step() -> None:
    assert location_step_mask(torch.ones(3, 2)).tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_step_masks_of_an_early_exit() -> None:
    # episode 0 runs all 3 steps, episode 1 stops at its second step
    steps = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    assert location_step_mask(steps).tolist() == [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def test_stopping_time_probs_by_hand() -> None:
    # stop chances 0.5, 0.25, then the episode's end: P = 0.5, 0.5 * 0.25, 0.5 * 0.75 (the last step's logit
    # changes nothing)
    hazard = torch.tensor([0.5, 0.25, 0.9])
    logits = torch.stack([torch.zeros(3), torch.log(hazard / (1 - hazard))], -1)[:, None]  # (3, 1, 2)
    probs = stopping_time_probs(logits)
    assert probs[:, 0].tolist() == pytest.approx([0.5, 0.125, 0.375])
    assert stopping_time_probs(torch.randn(7, 4, 2)).sum(0).tolist() == pytest.approx([1.0] * 4)


def test_expected_stop_loss_is_minus_the_expected_return_and_moves_the_stop_to_the_best_step() -> None:
    logits = torch.zeros(3, 1, 2, requires_grad=True)  # stop chance 1/2 at each step: P = 1/2, 1/4, 1/4
    returns = torch.tensor([[1.0], [4.0], [0.0]])  # stopping at step 2 pays most
    loss = expected_stop_loss(logits, returns)
    assert loss.item() == pytest.approx(-(0.5 * 1 + 0.25 * 4 + 0.25 * 0))
    loss.backward()
    stop_push = logits.grad[..., 0] - logits.grad[..., 1]  # > 0: descent raises the stop logit
    assert stop_push[0, 0] < 0 < stop_push[1, 0]  # keep watching at step 1, stop at step 2
    assert stop_push[2, 0] == 0  # the episode ends at step 3 whatever the choice


def test_masked_cross_entropy_and_surrogate_ignore_masked_steps() -> None:
    logits = torch.randn(3, 2, 4)
    labels = torch.tensor([1, 2])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    kept = torch.cat([logits[0], logits[1, :1]])
    expected = torch.nn.functional.cross_entropy(kept, torch.tensor([1, 2, 1]))
    assert class_cross_entropy(logits, labels, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    adv, zero = torch.tensor([1.0, 5.0]), torch.zeros(2)
    assert ppo_policy_loss(zero, zero, adv, 0.2, torch.tensor([1.0, 0.0])).item() == pytest.approx(-1.0)
