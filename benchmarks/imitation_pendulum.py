"""imitation's side of benchmarks/feedback_efficiency.py: one run of its preference
comparisons (Christiano et al. 2017 as imitation 1.0.1 implements it, with SB3's PPO) on
Pendulum-v1, with a synthetic teacher, then the policy's true return over deterministic
episodes. Runs in .venv-imitation (benchmarks/requirements-imitation.txt: imitation pins a
gymnasium the platform cannot share); imports nothing of the platform. Prints one JSON line.

Settings follow imitation's preference-comparisons tutorial, with the PPO
hyperparameters the platform uses for continuous control (8 envs × 256 steps, Adam 3e-4,
10 epochs, minibatches of 64, λ 0.95), fragments of 25 steps, a quarter of the labels from
the initial policy and the hyperbolic query schedule, as the platform's front_loaded one.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms import preference_comparisons as pc
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO


class MistakeGatherer(pc.SyntheticGatherer):
    """The deterministic oracle (temperature 0) whose choice is flipped with probability
    ``epsilon``: B-Pref's "mistake" teacher, as the platform's is."""

    def __init__(self, *, epsilon: float, rng: np.random.Generator, **kwargs):
        super().__init__(temperature=0, sample=False, rng=rng, **kwargs)
        self.epsilon = epsilon
        self.mistake_rng = rng

    def __call__(self, fragment_pairs):
        preferences = super().__call__(fragment_pairs)
        flip = self.mistake_rng.random(len(preferences)) < self.epsilon
        return np.where(flip, 1.0 - preferences, preferences).astype(np.float32)


def true_return(agent: PPO, *, episodes: int, seed: int) -> list[float]:
    env = gym.make("Pendulum-v1")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--teacher", choices=["rational", "mistake"], required=True)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    rng = np.random.default_rng(args.seed)
    venv = make_vec_env("Pendulum-v1", rng=rng, n_envs=8)
    reward_net = BasicRewardNet(
        venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm
    )
    if args.teacher == "rational":
        gatherer = pc.SyntheticGatherer(temperature=0, sample=False, rng=rng)
    else:
        gatherer = MistakeGatherer(epsilon=0.1, rng=rng)
    reward_trainer = pc.BasicRewardTrainer(
        preference_model=pc.PreferenceModel(reward_net),
        loss=pc.CrossEntropyRewardLoss(),
        epochs=3,
        rng=rng,
    )
    agent = PPO(
        policy="MlpPolicy",
        env=venv,
        seed=args.seed,
        n_steps=256,
        batch_size=64,
        n_epochs=10,
        learning_rate=3e-4,
        gae_lambda=0.95,
        gamma=args.gamma,
        ent_coef=0.0,
    )
    trajectory_generator = pc.AgentTrainer(
        algorithm=agent, reward_fn=reward_net, venv=venv, exploration_frac=0.05, rng=rng
    )
    trainer = pc.PreferenceComparisons(
        trajectory_generator,
        reward_net,
        num_iterations=args.iterations,
        fragmenter=pc.RandomFragmenter(warning_threshold=0, rng=rng),
        preference_gatherer=gatherer,
        reward_trainer=reward_trainer,
        fragment_length=25,
        transition_oversampling=1,
        initial_comparison_frac=0.25,
        allow_variable_horizon=False,
        initial_epoch_multiplier=4,
        query_schedule="hyperbolic",
    )
    trainer.train(total_timesteps=args.steps, total_comparisons=args.labels)
    returns = true_return(agent, episodes=args.eval_episodes, seed=10_000)
    print(
        json.dumps(
            {
                "system": "imitation",
                "teacher": args.teacher,
                "labels": args.labels,
                "seed": args.seed,
                "true_return": float(np.mean(returns)),
                "wall_s": time.perf_counter() - start,
            }
        )
    )


if __name__ == "__main__":
    main()
