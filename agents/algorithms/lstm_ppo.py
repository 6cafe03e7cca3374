"""``lstm_ppo``: a recurrent actor-critic trained by PPO over whole fixed-length episodes.

The same :class:`~agents.algorithms.network.GlimpseNetwork` as ``reinforce`` (an LSTM memory core with location,
class and value heads; the value head is the critic on the LSTM state). Two ways to learn the class,
chosen by the ``class_loss`` hyperparameter:

- ``class_loss: cross_entropy`` (the shipped default, *hybrid*, as the paper, RAM and AdaFocus train
  their agents): the class head learns by cross-entropy against the label the env reports in
  ``info["label"]`` during training; the class sent to the env is the class head's argmax, so the eq. 7
  reward scores the policy's own predictions; PPO learns only the location action. Evaluation never
  reads labels.
- ``class_loss: none`` (*reward only*, like Stable-Baselines3's algorithms): both action parts - the next
  glimpse's cell and the predicted class - are sampled from the policy and learned from the reward alone;
  the joint log-probability of an action is the sum of its two parts.

Each iteration collects ``n_envs`` whole episodes in lockstep (one (L, n_envs) block), computes
generalised advantages with ``gamma``/``gae_lambda`` (defaults 1.0/1.0: the Monte-Carlo return minus the
value, which fits a reward paid at the last step), then runs ``n_epochs`` passes of clipped-surrogate
PPO (entropy bonus ``ent_coef`` on the sampled parts) over ``n_minibatches`` minibatches of whole episodes.
Because every minibatch holds whole episodes from their first step, the LSTM runs over each sequence at
once from a zero state: no stored hidden states, no per-step loop (unlike sb3-contrib's ``RecurrentPPO``).
The last step's cell choice is left out (no glimpse follows it). With the env's ``early_exit`` every
minibatch also adds the stop head's loss, minus its exact expected return over the stopping times of the
whole training clips (``expected_stop_loss``, as ``reinforce``); rollouts never stop.

The critic predicts returns standardised by their running mean and standard deviation (value
normalisation, as in MAPPO; ``EpisodeAlgorithm.return_moments``): the paper's reward sums +-eta over T
steps, so returns sit far from 0 (about -14.5 for a policy at chance on 51 classes) and an unnormalised
critic would spend its first thousands of updates chasing the offset, its loss swamping the policy's
gradient in the clipped global norm.

Dropout (class head) defaults to 0 here: it would make the probabilities of the update differ from those
of the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from agents.algorithms.base import EpisodeAlgorithm, EpisodeHyperparams
from agents.algorithms.losses import (
    attention_penalty,
    categorical_entropy,
    class_cross_entropy,
    gae,
    masked_mean,
    ppo_policy_loss,
    standardize,
    taken_log_prob,
)
from agents.algorithms.reinforce import location_step_mask
from agents.algorithms.rollout import RolloutBatch

CLASS_LOSSES = ("cross_entropy", "none")


@dataclass
class LstmPPOHyperparams(EpisodeHyperparams):
    """:class:`EpisodeHyperparams` plus PPO's

    :param n_epochs: passes over each batch.
    :param n_minibatches: minibatches (of whole episodes) per pass.
    :param clip_range: surrogate clipping epsilon.
    :param gamma: discount.
    :param gae_lambda: GAE lambda.
    :param ent_coef: entropy bonus (the sampled action parts).
    :param vf_coef: value loss weight.
    :param normalize_advantage: standardise advantages per minibatch.
    :param target_kl: stop the epochs early when the approximate KL exceeds it (None: never).
    :param class_loss: ``"cross_entropy"`` (hybrid: the class head learns from the label, PPO the
        glimpses) or ``"none"`` (reward only: PPO learns both action parts).
    :param class_coef: weight of the cross-entropy term (hybrid only).
    :param attention_penalty: lambda of the doubly stochastic penalty on the location distributions.
    :param location_lr_scale: the location head learns at ``learning_rate`` times this.
    :param stop_lr_scale: the stop head (env ``early_exit``) learns at ``learning_rate`` times this.
    """

    n_epochs: int
    n_minibatches: int
    clip_range: float
    gamma: float
    gae_lambda: float
    ent_coef: float
    vf_coef: float
    normalize_advantage: bool
    target_kl: float | None
    class_loss: str = "cross_entropy"
    class_coef: float = 1.0
    attention_penalty: float = 0.0
    location_lr_scale: float = 1.0
    stop_lr_scale: float = 1.0

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"class_loss": CLASS_LOSSES}


class LstmPPO(EpisodeAlgorithm):
    """Recurrent PPO over whole episodes, hybrid or reward only. See the module docstring."""

    hyperparams_class = LstmPPOHyperparams
    hp: LstmPPOHyperparams
    learns_to_stop = True

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], hyperparams: LstmPPOHyperparams, **kwargs: Any) -> None:
        if hyperparams.class_loss not in CLASS_LOSSES:
            raise ValueError(f"class_loss must be one of {', '.join(CLASS_LOSSES)}, not {hyperparams.class_loss!r}")
        # Reward only: the class is an action part like the cell, so rollouts sample it.
        self.sample_class = hyperparams.class_loss == "none"
        # Hybrid: the memory is shaped by the class loss and the glimpse policy; the critic only reads it
        # (as REINFORCE's baseline and RAM's), so its noisy early targets do not pull the memory around.
        self.detach_value = hyperparams.class_loss == "cross_entropy"
        super().__init__(env_id, env_kwargs, hyperparams, **kwargs)

    @property
    def hybrid(self) -> bool:
        return self.hp.class_loss == "cross_entropy"

    def param_groups(self) -> list[dict[str, Any]]:
        """The location and stop heads in groups of their own (``location_lr_scale``, ``stop_lr_scale``)."""
        return self.location_param_groups(self.hp.location_lr_scale, self.hp.stop_lr_scale)

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        hp = self.hp
        assert batch.values is not None and batch.location_log_prob is not None and batch.class_log_prob is not None
        dev = self.device
        n = batch.num_episodes
        step_mask = batch.mask.to(dev)  # (L, B): 1 at the episodes' steps
        moments = self.return_moments
        # values in reward units; zero after an episode's end, so its last step bootstraps from nothing
        rewards, values = batch.rewards.to(dev), moments.denormalize(batch.values.to(dev)) * step_mask
        advantages = gae(rewards, values, hp.gamma, hp.gae_lambda)  # (L, B)
        returns = advantages + values
        moments.fold(returns[step_mask > 0])
        value_targets = moments.normalize(returns)
        loc_mask = location_step_mask(step_mask)
        # The stop head (early exit) learns its exact expected return over stopping times (rollouts never stop).
        stop_returns = self.stop_returns(batch)
        # Log-probability of the sampled action parts: the cell (not at the last step) and the class when it is
        # sampled (reward only); the hybrid's class is the class head's argmax, not an RL action.
        old_logp = batch.location_log_prob.to(dev) * loc_mask
        if not self.hybrid:
            old_logp = old_logp + batch.class_log_prob.to(dev) * step_mask
        actions = batch.actions.to(dev)
        labels = batch.labels.to(dev)
        obs = {k: v.to(dev) for k, v in batch.obs.items()}
        mb_size = max(1, n // max(1, hp.n_minibatches))
        logs: dict[str, list[float]] = {
            k: [] for k in ("policy_loss", "value_loss", "cross_entropy", "attention_penalty", "location_entropy",
                            "class_entropy", "approx_kl", "clip_fraction", "step_accuracy")
        }
        grad_logs: dict[str, list[float]] = {}  # and the stop head's metrics
        stop = False
        # The episodes of a batch are independent draws, so a minibatch is a fixed run of episodes, copied
        # out once (contiguous, as the cube-scoring product wants it) rather than gathered again every
        # epoch. Each epoch visits the minibatches in a new random order.
        minibatches = [slice(start, min(start + mb_size, n)) for start in range(0, n, mb_size)]
        minibatch_obs = [{k: v[:, idx].contiguous() for k, v in obs.items()} for idx in minibatches]
        del obs
        for _ in range(hp.n_epochs):
            order = torch.randperm(len(minibatches), generator=self.generator, device=dev)
            for j in order.tolist():
                idx = minibatches[j]
                out, _ = self.network(minibatch_obs[j])  # whole episodes (L, b, ...)
                loc_logp = torch.log_softmax(out.location_logits, -1)  # (L, b, K*K)
                cls_logp = torch.log_softmax(out.class_logits, -1)  # (L, b, C)
                a, m, sm = actions[:, idx], loc_mask[:, idx], step_mask[:, idx]
                logp = taken_log_prob(loc_logp, a[..., 0]) * m
                ent_loc = masked_mean(categorical_entropy(loc_logp), m)
                ent_cls = masked_mean(categorical_entropy(cls_logp), sm)
                if self.hybrid:
                    entropy = ent_loc
                    ce = class_cross_entropy(out.class_logits, labels[idx], sm)
                else:
                    logp = logp + taken_log_prob(cls_logp, a[..., 1]) * sm
                    entropy = ent_loc + ent_cls
                    ce = torch.zeros((), device=dev)
                adv = advantages[:, idx]
                if hp.normalize_advantage:
                    adv = standardize(adv, sm)
                pg = ppo_policy_loss(logp.reshape(-1), old_logp[:, idx].reshape(-1), adv.reshape(-1), hp.clip_range,
                                     sm.reshape(-1))
                v_loss = masked_mean((out.value - value_targets[:, idx]) ** 2, sm)
                penalty = attention_penalty(loc_logp.exp(), m)
                loss = pg + hp.vf_coef * v_loss - hp.ent_coef * entropy + hp.attention_penalty * penalty
                if self.hybrid:
                    loss = loss + hp.class_coef * ce
                stop_metrics: dict[str, float] = {}
                if stop_returns is not None:
                    stop_loss, stop_metrics = self.stop_loss(out.stop_logits, stop_returns[:, idx])
                    loss = loss + stop_loss
                for key, val in {**self.step_optimizer(loss), **stop_metrics}.items():
                    grad_logs.setdefault(key, []).append(val)
                with torch.no_grad():
                    log_ratio = logp - old_logp[:, idx]
                    kl = masked_mean((log_ratio.exp() - 1) - log_ratio, sm).item()
                    clipped = masked_mean(((log_ratio.exp() - 1).abs() > hp.clip_range).float(), sm).item()
                    acc = masked_mean((out.class_logits.argmax(-1) == labels[idx]).float(), sm).item()
                values_now = (pg.item(), v_loss.item(), ce.item(), penalty.item(), ent_loc.item(), ent_cls.item(),
                              kl, clipped, acc)
                for key, val in zip(logs, values_now, strict=True):
                    logs[key].append(val)
                if hp.target_kl is not None and kl > 1.5 * hp.target_kl:
                    stop = True
                    break
            if stop:
                break
        metrics = {k: sum(v) / len(v) for k, v in {**logs, **grad_logs}.items()}
        if not self.hybrid:
            del metrics["cross_entropy"]
        counted = step_mask > 0
        var_y = returns[counted].var()
        metrics["explained_variance"] = float(1 - (returns - values)[counted].var() / var_y) if var_y > 0 else 0.0
        return metrics
