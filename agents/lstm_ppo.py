"""``lstm_ppo``: a recurrent actor-critic trained by PPO over whole fixed-length episodes.

The same :class:`~agents.network.GlimpseNetwork` as ``reinforce`` (value head on the shared memory), but
both action parts - the next glimpse's cell and the predicted class - are sampled from the policy and
learned from the env's reward alone, like Stable-Baselines3's algorithms (no cross-entropy on labels).

Each iteration collects ``n_envs`` whole episodes in lockstep (one (L, n_envs) block), computes
generalised advantages with ``gamma``/``gae_lambda`` (defaults 1.0/1.0: the Monte-Carlo return minus the
value, which fits a reward paid at the last step), then runs ``n_epochs`` passes of clipped-surrogate
PPO over ``n_minibatches`` minibatches of whole episodes. Because every minibatch holds whole episodes from their first
step, the LSTM runs over each sequence at once from a zero state: no stored hidden states, no
per-step loop (unlike sb3-contrib's ``RecurrentPPO``). The joint log-probability of an action is the sum
of its two parts; the last step's cell choice is left out (no glimpse follows it).

The value head predicts returns standardised by their running mean and standard deviation (value
normalisation, as in MAPPO): the paper's reward sums +-eta over T steps, so returns sit far from 0 (about
-14.5 for a policy at chance on 51 classes) with a spread of about 1, and an unnormalised critic would spend
its first thousands of updates chasing the offset, its loss swamping the policy's gradient in the clipped
global norm.

Dropout (class head) defaults to 0 here: it would make the probabilities of the update differ from those
of the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.base import EpisodeAlgorithm, EpisodeHyperparams
from agents.losses import gae, ppo_policy_loss
from agents.network import fold_moments
from agents.reinforce import location_step_mask
from agents.rollout import EpisodeBatch


@dataclass
class LstmPPOHyperparams(EpisodeHyperparams):
    """:class:`EpisodeHyperparams` plus PPO's

    :param n_epochs: passes over each batch.
    :param n_minibatches: minibatches (of whole episodes) per pass.
    :param clip_range: surrogate clipping epsilon.
    :param gamma: discount.
    :param gae_lambda: GAE lambda.
    :param ent_coef: entropy bonus (both action parts).
    :param vf_coef: value loss weight.
    :param normalize_advantage: standardise advantages per minibatch.
    :param target_kl: stop the epochs early when the approximate KL exceeds it (None: never).
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


class LstmPPO(EpisodeAlgorithm):
    """Recurrent PPO over whole episodes. See the module docstring."""

    hyperparams_class = LstmPPOHyperparams
    sample_class = True
    hp: LstmPPOHyperparams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # running moments of the returns: the value head predicts (return - mean) / std
        self.return_mean = torch.zeros(1, device=self.device)
        self.return_var = torch.ones(1, device=self.device)
        self.return_count = torch.zeros((), dtype=torch.float64, device=self.device)

    def extra_state(self) -> dict[str, Any]:
        return {"return_moments": (self.return_mean, self.return_var, self.return_count)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for mine, saved in zip((self.return_mean, self.return_var, self.return_count), state["return_moments"],
                               strict=True):
            mine.copy_(saved)

    def _return_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.return_mean, torch.sqrt(self.return_var + 1e-8)

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        hp = self.hp
        assert batch.values is not None and batch.location_log_prob is not None and batch.class_log_prob is not None
        dev = self.device
        steps, n = batch.length, batch.num_episodes
        mean, std = self._return_scale()
        rewards, values = batch.rewards.to(dev), batch.values.to(dev) * std + mean  # values in reward units
        advantages = gae(rewards, values, hp.gamma, hp.gae_lambda)  # (L, B)
        returns = advantages + values
        fold_moments(self.return_mean, self.return_var, self.return_count, returns.reshape(-1, 1))
        mean, std = self._return_scale()
        value_targets = (returns - mean) / std
        loc_mask = location_step_mask(steps, n).to(dev)
        old_logp = batch.location_log_prob.to(dev) * loc_mask + batch.class_log_prob.to(dev)  # (L, B)
        actions = batch.actions.to(dev)
        obs = {k: v.to(dev) for k, v in batch.obs.items()}
        mb_size = max(1, n // max(1, hp.n_minibatches))
        logs: dict[str, list[float]] = {
            k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        }
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
                a = actions[:, idx]
                m = loc_mask[:, idx]
                logp = loc_logp.gather(-1, a[..., :1]).squeeze(-1) * m + cls_logp.gather(-1, a[..., 1:]).squeeze(-1)
                adv = advantages[:, idx]
                if hp.normalize_advantage and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = ppo_policy_loss(logp.reshape(-1), old_logp[:, idx].reshape(-1), adv.reshape(-1), hp.clip_range)
                v_loss = ((out.value - value_targets[:, idx]) ** 2).mean()
                ent_loc = -(loc_logp.exp() * loc_logp).sum(-1)
                ent_cls = -(cls_logp.exp() * cls_logp).sum(-1)
                entropy = (ent_loc * m + ent_cls).mean()
                loss = pg + hp.vf_coef * v_loss - hp.ent_coef * entropy
                self.step_optimizer(loss)
                with torch.no_grad():
                    log_ratio = logp - old_logp[:, idx]
                    kl = ((log_ratio.exp() - 1) - log_ratio).mean().item()
                    clipped = ((log_ratio.exp() - 1).abs() > hp.clip_range).float().mean().item()
                for key, val in zip(logs, (pg.item(), v_loss.item(), entropy.item(), kl, clipped), strict=True):
                    logs[key].append(val)
                if hp.target_kl is not None and kl > 1.5 * hp.target_kl:
                    stop = True
                    break
            if stop:
                break
        metrics = {k: sum(v) / len(v) for k, v in logs.items()}
        var_y = returns.var()
        metrics["explained_variance"] = float(1 - (returns - values).var() / var_y) if var_y > 0 else 0.0
        return metrics
