"""The reward: the paper's eq. 7 and the two comparison modes. The only place the reward is computed.

Paper (eq. 7), paid once at the final step N, 0 before:

    r_N = eta * N_plus * R_plus + (1 - eta) * N_minus * R_minus

N_plus / N_minus count the steps whose class prediction was right / wrong (a multi-label video counts a
prediction as right when it is one of its labels).
"""

from __future__ import annotations

REWARD_MODES = ("paper", "final", "dense")


def paper_reward(n_true_pos, n_false_pos, eta: float, reward_positive: float, reward_negative: float):
    """Eq. 7 for counts given as Python numbers or numpy arrays (same type out)."""
    return eta * n_true_pos * reward_positive + (1.0 - eta) * n_false_pos * reward_negative


def step_reward(mode: str, correct, n_true_pos, n_false_pos, is_last, eta: float, reward_positive: float,
                reward_negative: float, weight=1):
    """Reward of one step, for one episode (Python scalars) or a batch (numpy arrays).

    ``correct`` says whether this step's prediction was right; the counts already include this step.
    ``weight`` is the number of steps this prediction counts for: 1, or with an early exit 1 + the steps
    not taken (the stopping agent commits to its last prediction).

    - ``"paper"``: eq. 7 over all predictions at the last step, 0 before.
    - ``"final"``: eq. 7 over the last prediction only, at the last step (departure from the paper).
    - ``"dense"``: each step pays its own eq. 7 term at once; the episode's sum equals ``"paper"``'s
      (departure from the paper: the credit is no longer delayed).
    """
    if mode == "paper":
        return is_last * paper_reward(n_true_pos, n_false_pos, eta, reward_positive, reward_negative)
    this_step = paper_reward(correct, 1 - correct, eta, reward_positive, reward_negative)
    if mode == "dense":
        return this_step * weight
    if mode == "final":
        return is_last * this_step
    raise ValueError(f"unknown reward_mode {mode!r}; choose one of {', '.join(REWARD_MODES)}")
