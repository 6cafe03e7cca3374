"""What ``train_agent.py`` drives: the :class:`Algorithm` interface and :class:`EpisodeAlgorithm`, the
template for our own agents that learn from whole lockstep episodes.

A training session (``agents.training.session.TrainingSession``) calls ``learn``; the algorithm reports back after
every iteration through the session's ``on_iteration``/``stop_requested``, which do logging, evaluation,
checkpoints and Ctrl-C.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from agents.algorithms.losses import expected_stop_loss, standardize, stopping_time_probs
from agents.algorithms.network import GlimpseNetwork, NetworkConfig, RunningMoments
from agents.algorithms.policy import LocationRule, NetworkPolicy, Policy
from agents.algorithms.rollout import RolloutBatch, collect_episodes
from agents.training.envutil import EnvShape, IncompatibleEnvError, make_vector_env
from agents.training.runs import check_format

#: Layout version of model.pt and of our checkpoints; a loader refuses another one.
CHECKPOINT_FORMAT = 1


class Session(Protocol):
    """The part of a training session an algorithm talks to."""

    @property
    def stop_requested(self) -> bool: ...

    def on_iteration(self, num_timesteps: int, metrics: dict[str, float]) -> None: ...


class Algorithm(ABC):
    """A learner bound to one env. Subclasses: :class:`EpisodeAlgorithm` (ours),
    ``agents.algorithms.sb3.SB3Algorithm``."""

    #: file name of the final model inside a run folder
    model_filename: ClassVar[str]
    #: file suffix of checkpoints
    checkpoint_suffix: ClassVar[str]

    num_timesteps: int

    @abstractmethod
    def learn(self, total_timesteps: int, session: Session) -> None:
        """Train until ``num_timesteps >= total_timesteps`` or the session asks to stop."""

    @abstractmethod
    def policy(self) -> Policy:
        """A fresh :class:`Policy` acting with the current parameters (for evaluation)."""

    @abstractmethod
    def save_model(self, path: Path) -> None:
        """Write the final model (what :func:`agents.load_policy` reads)."""

    @abstractmethod
    def save_checkpoint(self, path: Path) -> None:
        """Write everything needed to continue training."""

    @abstractmethod
    def load_checkpoint(self, path: Path) -> None:
        """Continue from :meth:`save_checkpoint`'s file."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release envs."""


@dataclass
class EpisodeHyperparams:
    """Hyperparameters shared by our agents (keys of ``agents/training/hyperparams/<algo>.yml``).

    :param n_envs: episodes collected in lockstep per update (``--n-envs`` overrides).
    :param n_timesteps: default training length in env steps (``--total-timesteps`` overrides).
    :param eval_every: env steps between test-set evaluations (``--eval-every`` overrides).
    :param learning_rate: Adam step size.
    :param weight_decay: L2 coefficient gamma of the paper's loss (Adam weight decay).
    :param max_grad_norm: gradient clipping (0 disables).
    :param network: :class:`~agents.algorithms.network.NetworkConfig` entries: embed_dim, hidden_size,
        num_layers, class_hidden, dropout, saliency_prior, encode_periphery, content_dropout.
    """

    n_envs: int
    n_timesteps: int
    eval_every: int
    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    network: dict[str, Any]

    #: keys of ``network`` a user may set (the rest follow from the env and the algorithm)
    NETWORK_KEYS: ClassVar[tuple[str, ...]] = (
        "embed_dim", "hidden_size", "num_layers", "class_hidden", "dropout", "saliency_prior", "encode_periphery",
        "content_dropout",
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollout_seed(seed: int, iteration: int) -> int:
    """Reset seed of iteration ``iteration``: a pure function of both, so a resumed run draws the same
    episodes as an uninterrupted one without saving the env's RNG."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


class EpisodeAlgorithm(Algorithm):
    """Template for our agents: each iteration resets the batched vector env, collects ``n_envs`` whole
    episodes in lockstep with the agent's :class:`NetworkPolicy` (:meth:`collect`), folds the observed
    features into the network's input statistics, then calls :meth:`update` on the (L, n_envs) batch.

    Subclasses set the class attributes below and implement :meth:`update`.
    """

    model_filename = "model.pt"
    checkpoint_suffix = ".pt"

    #: how the network reads its input (see NetworkConfig.input_mode)
    input_mode: ClassVar[str] = "glimpse"
    #: where the next glimpse goes
    location_rule: ClassVar[LocationRule] = "learned"
    #: whether exploring rollouts sample the class (pure RL) or take the class head's argmax
    sample_class: bool = False
    #: whether training rollouts explore (sample learned locations) or act greedily
    explore: ClassVar[bool] = True
    #: whether a learned location head may score the cells of an observed cube (content-based attention)
    content_attention: ClassVar[bool] = True
    #: whether the agent learns when to stop (the env's ``early_exit``); the others never stop
    learns_to_stop: ClassVar[bool] = False
    #: whether the value head reads a detached memory state
    detach_value: bool = False
    hyperparams_class: ClassVar[type[EpisodeHyperparams]] = EpisodeHyperparams

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        hyperparams: EpisodeHyperparams,
        *,
        n_envs: int,
        seed: int,
        device: str = "cpu",
    ) -> None:
        self.env_id, self.env_kwargs, self.hp = env_id, dict(env_kwargs), hyperparams
        self.n_envs, self.seed, self.device = n_envs, seed, torch.device(device)
        self.env = make_vector_env(env_id, self.env_kwargs, n_envs)
        try:
            self.shape = EnvShape.of(self.env)
            self.check_env()
        except BaseException:
            self.env.close()
            raise
        torch.manual_seed(seed)  # parameter init and dropout
        self.network = GlimpseNetwork(self.network_config()).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.param_groups(), lr=hyperparams.learning_rate, weight_decay=hyperparams.weight_decay
        )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)  # rollout draws
        # Rollouts never stop: whole clips train the location and class heads on every frame, and score every
        # stopping time for the stop head at once (stop_loss).
        self._rollout_policy = NetworkPolicy(self.network, self.location_rule, self.sample_class, self.generator,
                                             allow_stop=False)
        # The critic / baseline predicts returns standardised by these running moments (value normalisation):
        # eq. 7 returns sit far from 0 with a spread that depends on C and T, and a critic fitted in raw units
        # has a squared error of ~100 whose gradient swamps every other term in the clipped global norm.
        self.return_moments = RunningMoments(self.device)
        self.iteration = 0
        self.num_timesteps = 0
        self.episode_stats: deque[tuple[float, float, float, float]] = deque(maxlen=100)

    # ------------------------------------------------------------------ construction hooks
    def check_env(self) -> None:
        """Raise :class:`IncompatibleEnvError` if this agent cannot run on the env."""
        if self.input_mode in ("soft", "mean") and not self.shape.has_cube:
            raise IncompatibleEnvError(
                f"{type(self).__name__} reads all {self.shape.num_cells} cells of every frame, so it needs the "
                "'cube' observation: use observation_mode='cube' (the default)"
            )
        if self.location_rule == "oracle" and not getattr(self.env.unwrapped.source, "has_core", True):
            raise IncompatibleEnvError(
                f"the oracle policy needs the ground-truth action core, which {self.env_id} does not have "
                "(only SyntheticGlimpse-v0 does)"
            )

    def network_config(self) -> NetworkConfig:
        s = self.shape
        return NetworkConfig(
            feature_dim=s.feature_dim,
            num_classes=s.num_classes,
            num_cells=s.num_cells,
            input_mode=self.input_mode,  # type: ignore[arg-type]
            use_cube=s.has_cube and self.location_rule == "learned" and self.content_attention,
            periphery_dim=s.periphery_dim if self.location_rule == "learned" and self.content_attention else 0,
            glimpses_per_frame=s.glimpses_per_frame,
            detach_value=self.detach_value,
            early_exit=s.early_exit,
            **self.hp.network,
        )

    def extra_state(self) -> dict[str, Any]:
        """Learner state beyond the network and optimizer that a checkpoint must keep."""
        return {"return_moments": self.return_moments.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""
        if "return_moments" in state:
            self.return_moments.load_state(state["return_moments"])

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups (one by default)."""
        return [{"params": list(self.network.parameters())}]

    def location_param_groups(self, location_lr_scale: float, stop_lr_scale: float = 1.0) -> list[dict[str, Any]]:
        """Optimizer groups for the agents whose glimpse policy learns from a policy gradient: the location head
        at ``learning_rate * location_lr_scale``, the stop head (with ``early_exit``) at ``learning_rate *
        stop_lr_scale``, the rest at ``learning_rate``."""
        location, stop = self.network.location_parameters(), self.network.stop_parameters()
        ids = {id(p) for p in location + stop}
        rest = [p for p in self.network.parameters() if id(p) not in ids]
        lr = self.hp.learning_rate
        groups = [{"params": rest}, {"params": location, "lr": lr * location_lr_scale}]
        return groups + ([{"params": stop, "lr": lr * stop_lr_scale}] if stop else [])

    # ------------------------------------------------------------------ training
    @abstractmethod
    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """Learn from one batch; return ``train/...`` metrics (names without the prefix)."""

    def obs_keys(self) -> tuple[str, ...]:
        """Observation entries the update needs (the cube is large: keep it only when it is read)."""
        cfg = self.network.config
        keys = ("glimpse", "location", "progress") + (("periphery",) if cfg.periphery_dim else ())
        return (*keys, "cube") if cfg.reads_cube else keys

    def stop_returns(self, batch: RolloutBatch) -> torch.Tensor | None:
        """(L, B): the return each episode of ``batch`` (whole clips) would have earned by stopping at each step,
        from the env's own rules (``EpisodeRules.stop_returns``); None for agents that do not learn to stop."""
        if not (self.learns_to_stop and self.shape.early_exit):
            return None
        rules = self.env.unwrapped.rules
        raw = rules.stop_returns(batch.rewards.numpy(), batch.n_true_pos.numpy(), batch.n_false_pos.numpy())
        return torch.as_tensor(raw, dtype=torch.float32, device=self.device)

    @staticmethod
    def stop_loss(stop_logits: torch.Tensor, returns: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The stop head's loss (``expected_stop_loss``) given :meth:`stop_returns`, and its metrics. The returns
        are standardised over the episodes given, so the stop head's step size does not depend on the reward's
        scale."""
        loss = expected_stop_loss(stop_logits, standardize(returns))
        with torch.no_grad():
            probs = stopping_time_probs(stop_logits)
            steps = torch.arange(1, probs.shape[0] + 1, device=probs.device, dtype=probs.dtype)[:, None]
            metrics = {
                "stop_loss": loss.item(),
                "stop_expected_steps": (probs * steps).sum(0).mean().item(),
                # the return the stop policy expects over watching whole clips, and the best stopping time's
                "stop_return_gain": ((probs * returns).sum(0) - returns[-1]).mean().item(),
                "stop_best_return_gain": (returns.max(0).values - returns[-1]).mean().item(),
            }
        return loss, metrics

    def collect(self) -> RolloutBatch:
        self.network.eval()
        return collect_episodes(
            self.env,
            self._rollout_policy,
            seed=rollout_seed(self.seed, self.iteration),
            deterministic=not self.explore,
            obs_keys=self.obs_keys(),
        )

    def learn(self, total_timesteps: int, session: Session) -> None:
        start_steps, busy = self.num_timesteps, 0.0  # busy: seconds spent collecting and learning
        while self.num_timesteps < total_timesteps and not session.stop_requested:
            tic = time.perf_counter()
            batch = self.collect()
            self.network.train()
            train_metrics = self.update(batch)
            # Input statistics are folded in after the update, so the update differentiates exactly the
            # policy that collected the batch (on-policy). From every cell of a few observed frames where
            # the cube is stored (they do not depend on where the policy looks), else from the glimpses.
            cube = batch.obs.get("cube")
            stride = max(1, batch.length // 4)
            self.network.update_input_stats(cube[::stride] if cube is not None else batch.obs["glimpse"])
            if "periphery" in batch.obs:
                self.network.update_periphery_stats(batch.obs["periphery"][::stride])
            self.iteration += 1
            self.num_timesteps += batch.num_steps
            busy += time.perf_counter() - tic
            metrics = {f"train/{k}": v for k, v in train_metrics.items()}
            metrics.update(self._rollout_metrics(batch))
            metrics["time/fps"] = (self.num_timesteps - start_steps) / max(busy, 1e-9)
            session.on_iteration(self.num_timesteps, metrics)

    def _rollout_metrics(self, batch: RolloutBatch) -> dict[str, float]:
        focus = torch.nanmean(batch.on_core, 0)  # (B,)
        for ret, ok, n, f in zip(batch.episode_returns.tolist(), batch.success.tolist(), batch.lengths.tolist(),
                                 focus.tolist(), strict=True):
            self.episode_stats.append((ret, float(ok), float(n), f))
        stats = np.array(self.episode_stats)
        out = {
            "rollout/ep_rew_mean": float(stats[:, 0].mean()),
            "rollout/success_rate": float(stats[:, 1].mean()),
            "rollout/ep_len_mean": float(stats[:, 2].mean()),
        }
        if np.isfinite(stats[:, 3]).any():
            out["rollout/focus_accuracy"] = float(np.nanmean(stats[:, 3]))
        return out

    def step_optimizer(self, loss: torch.Tensor) -> dict[str, float]:
        """Backward, clip, step. Returns the gradient norm before clipping (``grad_norm``) and that of each
        part of the network (``grad_norm/location`` ...), so TensorBoard shows which loss drives which part."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms = {
            f"grad_norm/{part}": float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            for part, params in self.network.parameter_parts().items()
            if (grads := [p.grad for p in params if p.grad is not None])
        }
        clip = self.hp.max_grad_norm if self.hp.max_grad_norm > 0 else float("inf")
        norms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.network.parameters(), clip))
        self.optimizer.step()
        return norms

    # ------------------------------------------------------------------ policy and files
    def policy(self) -> Policy:
        # Its own generator: evaluating never disturbs the training draws.
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        return NetworkPolicy(self.network, self.location_rule, self.sample_class, gen, self.learns_to_stop)

    def model_info(self) -> dict[str, Any]:
        """How to rebuild the policy around saved weights (also stored in config.json)."""
        return {
            "network_config": self.network.config.to_dict(),
            "location_rule": self.location_rule,
            "sample_class": self.sample_class,
            "allow_stop": self.learns_to_stop,
        }

    def save_model(self, path: Path) -> None:
        torch.save({"format": CHECKPOINT_FORMAT, **self.model_info(), "state_dict": self.network.state_dict()}, path)

    def save_checkpoint(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "iteration": self.iteration,
                "num_timesteps": self.num_timesteps,
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "episode_stats": list(self.episode_stats),
                "extra": self.extra_state(),
            },
            tmp,
        )
        tmp.replace(path)  # never a half-written checkpoint

    def load_checkpoint(self, path: Path) -> None:
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        check_format(ckpt, CHECKPOINT_FORMAT, path)
        self.network.load_state_dict(ckpt["network"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.iteration = int(ckpt["iteration"])
        self.num_timesteps = int(ckpt["num_timesteps"])
        self.load_extra_state(ckpt.get("extra", {}))
        self.episode_stats = deque((tuple(s) for s in ckpt["episode_stats"]), maxlen=100)

    def close(self) -> None:
        self.env.close()


def _network_policy(model_info: dict[str, Any], state_dict: dict[str, Any], device: str, seed: int) -> NetworkPolicy:
    network = GlimpseNetwork(NetworkConfig(**model_info["network_config"])).to(device)
    network.load_state_dict(state_dict)
    network.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    return NetworkPolicy(network, model_info["location_rule"], model_info["sample_class"], gen,
                         bool(model_info.get("allow_stop", True)))


def load_network_policy(model_path: Path, device: str = "cpu", seed: int = 0) -> NetworkPolicy:
    """Rebuild the :class:`NetworkPolicy` saved by :meth:`EpisodeAlgorithm.save_model`."""
    saved = torch.load(model_path, map_location=device, weights_only=False)
    check_format(saved, CHECKPOINT_FORMAT, model_path)
    return _network_policy(saved, saved["state_dict"], device, seed)


def load_network_policy_from_checkpoint(
    path: Path, model_info: dict[str, Any], device: str = "cpu", seed: int = 0
) -> NetworkPolicy:
    """The policy of a training checkpoint; ``model_info`` as in config.json's ``model``."""
    saved = torch.load(path, map_location=device, weights_only=False)
    check_format(saved, CHECKPOINT_FORMAT, path)
    return _network_policy(model_info, saved["network"], device, seed)
