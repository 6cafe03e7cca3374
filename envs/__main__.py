"""``python -m envs``: play a few episodes with a random policy and print what happened.

A smoke test of an installation and a quick look at the environment; no training involved.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from envs import DEFAULT_ENV, ENV_IDS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m envs", description=__doc__)
    parser.add_argument("--env", default=DEFAULT_ENV, choices=list(ENV_IDS))
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="feature store folder (store-backed ids)")
    parser.add_argument("--num-classes", type=int, default=None, help="synthetic only")
    parser.add_argument("--feature-dim", type=int, default=None, help="synthetic only")
    args = parser.parse_args(argv)
    kwargs = {k: v for k, v in {"data_root": args.data_root, "num_classes": args.num_classes,
                                "feature_dim": args.feature_dim}.items() if v is not None}
    env = gym.make(args.env, **kwargs)
    env.action_space.seed(args.seed)
    names = env.unwrapped.class_names
    print(f"{args.env}: {env.unwrapped.num_clips} clips, {len(names)} classes, "
          f"episode = {env.unwrapped.rules.episode_length} glimpses; random policy")
    correct = steps = 0
    for episode in range(1, args.episodes + 1):
        env.reset(seed=args.seed + episode)
        done, total, on_core = False, 0.0, []
        while not done:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            total += reward
            on_core.append(info.get("on_core"))
            done = terminated or truncated
        n = info["n_true_pos"] + info["n_false_pos"]
        correct, steps = correct + info["n_true_pos"], steps + n
        focus = "n/a" if on_core[0] is None else f"{np.mean(on_core):.0%}"
        print(f"episode {episode}: video {info['video_id']} ({names[info['label']]}), {n} glimpses, "
              f"{info['n_true_pos']} right predictions, reward {total:+.1f}, glimpses on the core {focus}")
    print(f"random policy: per-step accuracy {correct / steps:.1%} (chance {1 / len(names):.1%})")


if __name__ == "__main__":
    main()
