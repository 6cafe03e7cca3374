"""The one policy interface every algorithm exposes (ours and Stable-Baselines3's).

A :class:`Policy` acts on a batch of ``n`` episodes that run in lockstep (the batched vector env)::

    policy.reset(n)                                   # new episodes
    actions, class_probs = policy.act(obs, deterministic=True, core_mask=None)
    # actions (n, 2) int64: [cell of the next glimpse, predicted class] (n, 3) with the env's early_exit:
    # [cell, class, stop]; class_probs (n, C)

``obs`` is the vector env's observation dict (numpy, leading dim n). Policies with
``needs_core_mask = True`` (the ``oracle``) must be given ``core_mask`` = ``env.next_core_mask()`` (n, K*K).
Load a trained one with :func:`agents.load_policy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from agents.algorithms.network import GlimpseNetwork, NetState

LocationRule = Literal["learned", "random", "center", "oracle"]
LOCATION_RULES: tuple[str, ...] = ("learned", "random", "center", "oracle")


class Policy(ABC):
    """Acts on lockstep batches of episodes. See the module docstring."""

    needs_core_mask: bool = False

    @abstractmethod
    def reset(self, n: int) -> None:
        """Start ``n`` new episodes (clears recurrent state)."""

    @abstractmethod
    def act(
        self, obs: dict[str, np.ndarray], deterministic: bool = True, core_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step for every episode: actions (n, 2) int64 and class probabilities (n, C)."""


def obs_to_torch(obs: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Vector-env observation (n, ...) -> float32/int64 tensors with a leading time dim (1, n, ...)."""
    out = {}
    for key, value in obs.items():
        t = torch.as_tensor(np.asarray(value), device=device)
        t = t.long() if key == "location" else t.float()
        out[key] = t.unsqueeze(0)
    return out


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of ``probs`` (B, N) -> (B,)."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass
class StepResult:
    """Everything a learner needs from one step of a :class:`NetworkPolicy` (each leading dim B)."""

    actions: torch.Tensor  # (B, 2) int64, or (B, 3) with a stop head: [cell, class, stop]
    class_probs: torch.Tensor  # (B, C)
    location_log_prob: torch.Tensor  # (B,)
    class_log_prob: torch.Tensor  # (B,)
    value: torch.Tensor  # (B,)


class NetworkPolicy(Policy):
    """A :class:`GlimpseNetwork` stepped one observation at a time.

    :param network: the network (kept in eval mode while acting).
    :param location_rule: where the next glimpse goes: ``"learned"`` (the location head), ``"random"``,
        ``"center"`` or ``"oracle"`` (a ground-truth core cell; needs ``core_mask``).
    :param sample_class: when not deterministic, sample the predicted class from the class head (pure-RL
        agents) instead of taking its argmax (agents whose class head learns by cross-entropy).
    :param generator: torch generator for every draw (None: torch's global one).
    :param allow_stop: whether the stop head (env ``early_exit``) may end episodes; agents that never learned
        when to stop watch whole clips.
    """

    def __init__(
        self,
        network: GlimpseNetwork,
        location_rule: LocationRule = "learned",
        sample_class: bool = False,
        generator: torch.Generator | None = None,
        allow_stop: bool = True,
    ) -> None:
        if location_rule not in LOCATION_RULES:
            raise ValueError(f"location_rule must be one of {LOCATION_RULES}, not {location_rule!r}")
        self.network = network
        self.location_rule = location_rule
        self.sample_class = sample_class
        self.generator = generator
        #: whether the stop head may end an episode (learners keep it False: they train on whole clips)
        self.allow_stop = allow_stop
        self.needs_core_mask = location_rule == "oracle"
        self.device = next(network.parameters()).device
        self._state: NetState | None = None

    def reset(self, n: int) -> None:
        self._state = self.network.initial_state(n, self.device)
        self._continue = torch.ones(n, device=self.device)  # chance that the stop head has not stopped yet

    @torch.no_grad()
    def step(
        self, obs: dict[str, np.ndarray], deterministic: bool, core_mask: np.ndarray | None = None
    ) -> StepResult:
        """One step with log-probabilities and value (for rollouts)."""
        if self._state is None:
            raise RuntimeError("call reset(n) before act()/step()")
        was_training = self.network.training
        if was_training:  # act without dropout (rollouts switch to eval mode once, up front)
            self.network.eval()
        out, self._state = self.network(obs_to_torch(obs, self.device), self._state)
        if was_training:
            self.network.train()
        loc_logits, cls_logits, value = out.location_logits[0], out.class_logits[0], out.value[0]
        loc_logp = torch.log_softmax(loc_logits, -1)  # (B, K*K)
        cls_logp = torch.log_softmax(cls_logits, -1)  # (B, C)
        location = self._location(loc_logp, deterministic, core_mask)
        if deterministic or not self.sample_class:
            cls = cls_logp.argmax(-1)
        else:
            cls = sample(cls_logp.exp(), self.generator)
        parts = [location, cls]
        if out.stop_logits is not None:
            # Exploring: a draw at each step. Deterministic: stop at the median of the stopping time those draws
            # give, once the chance of having stopped by now passes one half (the per-step argmax would never
            # stop while each step's chance is small, unlike the policy that was trained).
            stop_logp = torch.log_softmax(out.stop_logits[0], -1)  # (B, 2)
            self._continue = self._continue * (1.0 - stop_logp[:, 1].exp())
            if deterministic:
                stop = (self._continue < 0.5).long()
            else:
                stop = sample(stop_logp.exp(), self.generator)
            if not self.allow_stop:
                stop = torch.zeros_like(stop)
            parts.append(stop)
        return StepResult(
            actions=torch.stack(parts, -1),
            class_probs=cls_logp.exp(),
            location_log_prob=loc_logp.gather(-1, location[:, None]).squeeze(-1),
            class_log_prob=cls_logp.gather(-1, cls[:, None]).squeeze(-1),
            value=value,
        )

    def _location(
        self, loc_logp: torch.Tensor, deterministic: bool, core_mask: np.ndarray | None
    ) -> torch.Tensor:
        batch, cells = loc_logp.shape
        rule = self.location_rule
        if rule == "learned":
            return loc_logp.argmax(-1) if deterministic else sample(loc_logp.exp(), self.generator)
        if rule == "center":
            return torch.full((batch,), cells // 2, dtype=torch.long, device=loc_logp.device)
        if rule == "random":
            return torch.randint(cells, (batch,), generator=self.generator, device=loc_logp.device)
        if core_mask is None:
            raise ValueError("the oracle policy needs core_mask=env.next_core_mask() at every step")
        mask = torch.as_tensor(np.asarray(core_mask), dtype=torch.float32, device=loc_logp.device)
        # Frames without a known core (all False) fall back to a uniform draw.
        mask = torch.where(mask.sum(-1, keepdim=True) > 0, mask, torch.ones_like(mask))
        return sample(mask / mask.sum(-1, keepdim=True), self.generator)

    def act(
        self, obs: dict[str, np.ndarray], deterministic: bool = True, core_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        res = self.step(obs, deterministic, core_mask)
        return res.actions.cpu().numpy(), res.class_probs.cpu().numpy()
