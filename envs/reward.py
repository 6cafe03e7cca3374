"""The reward: the paper's eq. 7 and the two comparison modes. The only place the reward is computed.

Paper (eq. 7), paid once at the final step N, 0 before:

    r_N = eta * N_plus * R_plus + (1 - eta) * N_minus * R_minus

N_plus / N_minus count the steps whose class prediction was right / wrong (a multi-label video counts a
prediction as right when it is one of its labels).
"""

from __future__ import annotations

import numpy as np

REWARD_MODES = ("paper", "final", "dense")


def paper_reward(
    n_true_pos: np.ndarray | int,
    n_false_pos: np.ndarray | int,
    eta: float,
    reward_positive: float,
    reward_negative: float,
) -> np.ndarray:
    """Eq. 7 for arrays (or scalars) of counts."""
    return eta * np.asarray(n_true_pos) * reward_positive + (1.0 - eta) * np.asarray(n_false_pos) * reward_negative


def step_reward(
    mode: str,
    correct: np.ndarray,
    n_true_pos: np.ndarray,
    n_false_pos: np.ndarray,
    is_last: np.ndarray,
    eta: float,
    reward_positive: float,
    reward_negative: float,
) -> np.ndarray:
    """Reward of one step for a batch of episodes (float32, shape of ``correct``).

    ``correct`` says whether this step's prediction was right; the counts already include this step.
    - ``"paper"``: eq. 7 over all predictions at the last step, 0 before.
    - ``"final"``: eq. 7 over the last prediction only, at the last step (departure from the paper).
    - ``"dense"``: each step pays its own eq. 7 term at once; the episode's sum equals ``"paper"``'s
      (departure from the paper: the credit is no longer delayed).
    """
    correct = np.asarray(correct, dtype=bool)
    one_step = paper_reward(correct, ~correct, eta, reward_positive, reward_negative)
    if mode == "dense":
        reward = one_step
    elif mode == "final":
        reward = np.where(is_last, one_step, 0.0)
    elif mode == "paper":
        reward = np.where(is_last, paper_reward(n_true_pos, n_false_pos, eta, reward_positive, reward_negative), 0.0)
    else:
        raise ValueError(f"unknown reward_mode {mode!r}; choose one of {', '.join(REWARD_MODES)}")
    return np.asarray(reward, dtype=np.float32)
