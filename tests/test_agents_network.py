"""The glimpse network, policies and rollouts (agents/algorithms/network.py, policy.py, rollout.py, evaluation.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from train_fixtures import ENV, FakeSession
from train_fixtures import TINY_ENV as TINY

from agents.algorithms.lstm_ppo import LstmPPO, LstmPPOHyperparams
from agents.algorithms.network import GlimpseNetwork, NetworkConfig
from agents.algorithms.policy import NetworkPolicy
from agents.algorithms.reinforce import Reinforce, ReinforceHyperparams
from agents.algorithms.rollout import collect_episodes
from agents.evaluation import evaluate_policy
from agents.training.envutil import make_vector_env
from envs.periphery import default_periphery_dim

torch.set_num_threads(1)

NET = {"embed_dim": 16, "hidden_size": 16, "num_layers": 2, "class_hidden": 16, "dropout": 0.0}


def _net(**overrides: object) -> GlimpseNetwork:
    torch.manual_seed(0)
    cfg = NetworkConfig(feature_dim=16, num_classes=3, **{**NET, **overrides})  # type: ignore[arg-type]
    net = GlimpseNetwork(cfg)
    net.eval()
    return net


def _episodes(env_kwargs: dict, n: int = 4) -> dict[str, torch.Tensor]:
    env = make_vector_env(ENV, {**TINY, **env_kwargs}, n)
    net = _net(use_cube="cube" in env.single_observation_space.spaces,
               glimpses_per_frame=env_kwargs.get("glimpses_per_frame", 1))
    batch = collect_episodes(env, NetworkPolicy(net, "random", generator=torch.Generator().manual_seed(1)), seed=3)
    env.close()
    return batch.obs


@pytest.mark.parametrize(
    ("mode", "env_kwargs"),
    [
        ("glimpse", {}),
        ("glimpse", {"observation_mode": "glimpse"}),
        ("glimpse", {"glimpses_per_frame": 2}),
        ("mean", {}),
        ("soft", {}),
    ],
)
def test_whole_sequence_equals_step_by_step(mode: str, env_kwargs: dict) -> None:
    """Training runs the network over whole episodes at once; rollouts step it. Same numbers."""
    obs = _episodes(env_kwargs)
    periphery_dim = obs["periphery"].shape[-1] if "periphery" in obs else 0
    net = _net(input_mode=mode, use_cube="cube" in obs, glimpses_per_frame=env_kwargs.get("glimpses_per_frame", 1),
               periphery_dim=periphery_dim)
    net.update_input_stats(obs["glimpse"])
    if periphery_dim:
        net.update_periphery_stats(obs["periphery"])
    with torch.no_grad():
        whole, _ = net(obs)
        state, steps = None, []
        for t in range(obs["progress"].shape[0]):
            out, state = net({k: v[t : t + 1] for k, v in obs.items()}, state)
            steps.append(out)
    for name in ("location_logits", "class_logits", "value", "weights"):
        stepped = torch.cat([getattr(o, name) for o in steps])
        assert torch.allclose(getattr(whole, name), stepped, atol=1e-5), name


def test_glimpses_of_a_frame_are_summed() -> None:
    """With m glimpses per frame, step t feeds the sum of the frame's glimpses so far (paper eq. 3)."""
    obs = _episodes({"glimpses_per_frame": 2, "observation_mode": "glimpse"})
    net = _net(use_cube=False, glimpses_per_frame=2)
    x, w, _, _ = net._frame_sums(obs, net.initial_state(obs["glimpse"].shape[1]))
    g = obs["glimpse"]
    assert torch.allclose(x[0], g[0]) and torch.allclose(x[1], g[0] + g[1]) and torch.allclose(x[2], g[2])
    assert torch.equal(w[1].sum(-1), torch.full_like(w[1].sum(-1), 2.0))


def test_input_stats_match_numpy_over_batches() -> None:
    net = _net()
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 3.0, (50, 16)), rng.normal(-1.0, 0.5, (30, 16))
    net.update_input_stats(torch.tensor(a, dtype=torch.float32))
    net.update_input_stats(torch.tensor(b, dtype=torch.float32))
    both = np.concatenate([a, b])
    assert np.allclose(net.input_mean.numpy(), both.mean(0), atol=1e-4)
    assert np.allclose(net.input_var.numpy(), both.var(0), atol=1e-3)
    assert float(net.input_count) == 80


def test_location_scores_ignore_a_shift_common_to_all_cells() -> None:
    """The cube scorer standardises cells; a per-channel offset shared by all cells cannot move attention."""
    net = _net(saliency_prior=1.0)
    h = torch.randn(2, 16)
    cube = torch.rand(2, 7, 7, 16)
    shift = torch.rand(16) * 5
    p1 = torch.softmax(net.location_logits(h, cube), -1)
    p2 = torch.softmax(net.location_logits(h, cube + shift), -1)
    assert torch.allclose(p1, p2, atol=1e-5)


def test_saliency_prior_prefers_strong_cells() -> None:
    cube = torch.zeros(1, 7, 7, 16)
    cube[0, 2, 5] = 3.0  # one cell with more activation than the rest
    h = torch.zeros(1, 16)
    assert _net(saliency_prior=2.0).location_logits(h, cube).argmax().item() == 2 * 7 + 5
    flat = torch.softmax(_net(saliency_prior=0.0).location_logits(h, cube), -1)
    assert flat.max() - flat.min() < 1e-2  # no prior: near uniform at initialisation


def test_periphery_scorer_prefers_salient_cells_and_ignores_a_common_shift() -> None:
    """Glimpse mode scores every cell from its periphery vector: a bright cell wins under the saliency prior,
    and a per-value offset shared by all cells cannot move attention (the periphery is standardised)."""
    periphery = torch.zeros(1, 7, 7, 4)
    periphery[0, 6, 1] = 3.0
    h = torch.zeros(1, 16)
    net = _net(use_cube=False, periphery_dim=4, saliency_prior=2.0)
    assert net.location_logits(h, None, periphery).argmax().item() == 6 * 7 + 1
    net.update_periphery_stats(torch.rand(100, 4) * 3)
    h = torch.randn(2, 16)
    grid = torch.rand(2, 7, 7, 4)
    p1 = torch.softmax(net.location_logits(h, None, grid), -1)
    p2 = torch.softmax(net.location_logits(h, None, grid + torch.rand(4) * 5), -1)
    assert torch.allclose(p1, p2, atol=1e-5)
    assert not torch.allclose(p1, torch.softmax(net.location_logits(h, None, torch.rand(2, 7, 7, 4)), -1))
    assert any(p is net.periphery_query.weight for p in net.location_parameters())
    with pytest.raises(ValueError, match="no 'periphery' observation"):
        net.location_logits(h, None, None)


def test_agents_read_the_periphery_in_glimpse_mode_only_where_they_choose_cells() -> None:
    kw = {**TINY, "observation_mode": "glimpse"}
    hp = ReinforceHyperparams(
        n_envs=4, n_timesteps=0, eval_every=0, learning_rate=0.01, weight_decay=0.0, max_grad_norm=0.0,
        network=dict(NET), attention_penalty=0.0, reinforce_coef=1.0, baseline_coef=1.0, entropy_coef=0.0,
        reward_scale=1.0, normalize_advantage=False,
    )
    agent = Reinforce(ENV, kw, hp, n_envs=4, seed=0)
    k = default_periphery_dim(TINY["feature_dim"])  # 1 at D = 16: the tenth-of-the-cube budget
    assert agent.network.config.periphery_dim == k and not agent.network.config.use_cube
    assert "periphery" in agent.obs_keys() and "cube" not in agent.obs_keys()
    batch = agent.collect()
    assert batch.obs["periphery"].shape == (5, 4, 7, 7, k)
    agent.close()
    blind = Reinforce(ENV, {**kw, "periphery_dim": 0}, hp, n_envs=4, seed=0)
    assert blind.network.config.periphery_dim == 0 and "periphery" not in blind.obs_keys()
    blind.close()


def test_cube_scorer_needs_the_cube() -> None:
    net = _net(use_cube=True)
    obs = _episodes({"observation_mode": "glimpse"})
    with pytest.raises(ValueError, match="cube"):
        net(obs)


def test_rollout_shapes_reward_and_labels() -> None:
    env = make_vector_env(ENV, TINY, 3)
    net = _net(use_cube=True)
    batch = collect_episodes(env, NetworkPolicy(net, "learned", generator=torch.Generator().manual_seed(0)), seed=5)
    assert batch.actions.shape == (5, 3, 2) and batch.obs["cube"].shape == (5, 3, 7, 7, 16)
    assert torch.count_nonzero(batch.rewards[:-1]) == 0  # eq. 7: paid at the last step only
    # eq. 7 with eta = 0.5, R+ = 1, R- = -1 from the actions taken
    right = (batch.actions[..., 1] == batch.labels).float().sum(0)
    assert torch.allclose(batch.rewards[-1], 0.5 * right - 0.5 * (5 - right))
    assert batch.location_log_prob is not None and torch.all(batch.location_log_prob <= 0)
    env.close()


def test_oracle_policy_looks_at_the_core() -> None:
    env = make_vector_env(ENV, {**TINY, "observation_mode": "glimpse"}, 4)
    net = _net(use_cube=False)
    batch = collect_episodes(env, NetworkPolicy(net, "oracle", generator=torch.Generator().manual_seed(0)), seed=0)
    assert batch.on_core[1:].mean().item() == 1.0  # every glimpse after the first (the centre) is on the core
    env.close()


def test_evaluation_sweeps_every_test_clip_once() -> None:
    env = make_vector_env(ENV, {**TINY, "subset": "test"}, 4)  # 6 clips: the last batch is padded
    net = _net(use_cube=True)
    result = evaluate_policy(NetworkPolicy(net, "learned"), env)
    assert result.n_clips == 6 == env.unwrapped.num_clips
    assert sorted(result.episodes.video_ids) == sorted(set(result.episodes.video_ids))
    assert result.glimpses_per_video == 5.0
    assert result.accuracy == pytest.approx(float((result.episodes.predictions == result.episodes.labels).mean()))
    env.close()


def test_policy_act_returns_actions_and_class_probabilities() -> None:
    env = make_vector_env(ENV, TINY, 2)
    obs, _ = env.reset(seed=0)
    policy = NetworkPolicy(_net(use_cube=True), "learned")
    policy.reset(2)
    actions, probs = policy.act(obs, deterministic=True)
    assert actions.shape == (2, 2) and actions.dtype == np.int64
    assert probs.shape == (2, 3) and np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert env.single_action_space.contains(actions[0])
    env.close()


def test_reinforce_update_raises_the_probability_of_rewarded_glimpses() -> None:
    """One REINFORCE update with rewards that favour some location choices, against the same update with
    the opposite rewards: the favoured choices gain log-probability relative to the others. (The
    cross-entropy part is the same in both and cancels.)"""
    hp = ReinforceHyperparams(
        n_envs=32, n_timesteps=0, eval_every=0, learning_rate=0.01, weight_decay=0.0, max_grad_norm=0.0,
        network=dict(NET), attention_penalty=0.0, reinforce_coef=1.0, baseline_coef=1.0, entropy_coef=0.0,
        reward_scale=1.0, normalize_advantage=False,
    )
    agent = Reinforce(ENV, TINY, hp, n_envs=32, seed=0)
    batch = agent.collect()
    agent.network.update_input_stats(batch.obs["cube"])
    favoured = (batch.actions[0, :, 0] % 2 == 0).float()  # episodes whose first jump went to an even cell
    start = copy.deepcopy((agent.network.state_dict(), agent.optimizer.state_dict()))

    def gain(sign: float) -> float:
        agent.network.load_state_dict(start[0])
        agent.optimizer.load_state_dict(start[1])
        b = copy.copy(batch)
        b.rewards = torch.zeros_like(batch.rewards)
        b.rewards[-1] = sign * (2 * favoured - 1)
        agent.network.train()
        agent.update(b)
        with torch.no_grad():
            out, _ = agent.network(batch.obs)
        logp = torch.log_softmax(out.location_logits[0], -1).gather(-1, batch.actions[0, :, :1]).squeeze(-1)
        return float((logp * favoured).sum() / favoured.sum() - (logp * (1 - favoured)).sum() / (1 - favoured).sum())

    assert gain(+1.0) > gain(-1.0) + 1e-3
    agent.close()


def test_location_head_learns_at_its_own_rate() -> None:
    hp = ReinforceHyperparams(
        n_envs=2, n_timesteps=0, eval_every=0, learning_rate=0.01, weight_decay=0.0, max_grad_norm=0.0,
        network=dict(NET), attention_penalty=0.0, reinforce_coef=1.0, baseline_coef=1.0, entropy_coef=0.0,
        reward_scale=1.0, normalize_advantage=False, location_lr_scale=0.1,
    )
    agent = Reinforce(ENV, TINY, hp, n_envs=2, seed=0)
    rest, location = agent.optimizer.param_groups
    assert rest["lr"] == 0.01 and location["lr"] == pytest.approx(0.001)
    assert {id(p) for p in location["params"]} == {id(p) for p in agent.network.location_parameters()}
    assert len(rest["params"]) + len(location["params"]) == len(list(agent.network.parameters()))
    agent.close()


def test_lstm_ppo_updates_the_policy_that_collected_the_batch() -> None:
    """On-policy: when an update starts, the network gives every action of the batch the log-probability it
    had in the rollout (input statistics change only after the update), and the critic's targets are the
    returns standardised by their running moments."""
    hp = LstmPPOHyperparams(
        n_envs=8, n_timesteps=0, eval_every=0, learning_rate=0.01, weight_decay=0.0, max_grad_norm=0.5,
        network=dict(NET), n_epochs=1, n_minibatches=1, clip_range=0.2, gamma=1.0, gae_lambda=1.0, ent_coef=0.0,
        vf_coef=0.5, normalize_advantage=True, target_kl=None,
    )
    agent = LstmPPO(ENV, TINY, hp, n_envs=8, seed=0)
    gaps, returns = [], []
    update = agent.update

    def checked_update(batch):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            out, _ = agent.network(batch.obs)
        logp = torch.log_softmax(out.class_logits, -1).gather(-1, batch.actions[..., 1:]).squeeze(-1)
        gaps.append(float((logp - batch.class_log_prob).abs().max()))
        returns.append(batch.rewards.flip(0).cumsum(0).flip(0))
        return update(batch)

    agent.update = checked_update  # type: ignore[method-assign]
    agent.learn(3 * 8 * 5, FakeSession())
    assert len(gaps) == 3 and max(gaps) < 1e-5
    seen = torch.cat([r.reshape(-1) for r in returns]).double()
    assert float(agent.return_moments.mean) == pytest.approx(float(seen.mean()), abs=1e-5)
    assert float(agent.return_moments.var) == pytest.approx(float(seen.var(unbiased=False)), abs=1e-4)
    agent.close()


def test_content_dropout_drops_the_glimpse_content_in_training_only() -> None:
    torch.manual_seed(0)
    net = GlimpseNetwork(NetworkConfig(feature_dim=8, num_classes=3, use_cube=False, embed_dim=16, hidden_size=8,
                                       num_layers=1, class_hidden=8, content_dropout=1.0))
    where, progress = torch.eye(49)[:4], torch.rand(4, 2)
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    net.train()
    assert torch.equal(net.encode(a, where, progress), net.encode(b, where, progress))  # only where and when
    net.eval()
    assert not torch.equal(net.encode(a, where, progress), net.encode(b, where, progress))


def test_the_stop_head_starts_against_stopping_and_reads_the_class_heads_confidence() -> None:
    net = GlimpseNetwork(NetworkConfig(feature_dim=8, num_classes=3, use_cube=False, embed_dim=16, hidden_size=8,
                                       num_layers=1, class_hidden=8, early_exit=True))
    h = torch.zeros(2, 8)
    sure, unsure = torch.tensor([[9.0, 0.0, 0.0]]), torch.zeros(1, 3)
    stop = torch.softmax(net.stop_logits(h[:1], sure), -1)[0, 1]
    assert 0.005 < stop < 0.05  # about 2 % per step at the start
    with torch.no_grad():
        net.stop_head.weight.zero_()
        net.stop_head.weight[1, -2] = 10.0  # stop when the largest class probability is high
    assert net.stop_logits(h[:1], sure)[0].argmax() == 1 and net.stop_logits(h[:1], unsure)[0].argmax() == 0


def test_rollouts_run_whole_clips_and_the_stop_head_learns_from_every_stopping_time() -> None:
    from train_fixtures import SMALL_NET, build_agent

    env_kwargs = {**TINY, "early_exit": True, "frame_cost": 0.1}
    agent = build_agent("reinforce", env_kwargs, n_envs=8, **SMALL_NET)
    agent.network.stop_head.bias.data[1] = 20.0  # a deployed policy would stop at once
    batch = agent.collect()
    assert batch.lengths.tolist() == [TINY["frames"]] * 8  # whole clips: nothing stopped
    before = agent.network.stop_head.bias.detach().clone()
    metrics = agent.update(batch)
    assert metrics["stop_expected_steps"] == pytest.approx(1.0, abs=1e-3)
    assert not torch.equal(before, agent.network.stop_head.bias)  # the stop head learned
    agent.close()
