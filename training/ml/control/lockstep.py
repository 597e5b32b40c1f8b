"""Whole episodes of several copies of one environment, stepped together so that the policy
acts on all of them in one batch: one forward pass per time step instead of one per
episode and time step. Episode i starts from ``reset(seed=seeds[i])``; an episode that ends
early drops out of the batch while the others go on.

Evaluation (rollouts.episode_returns) and candidate segments (replay.py) both run their
episodes this way; a profile of a Pendulum round spent most of their time in per-step
calls of a (1, obs_dim) policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.ml.control.spaces import (
    action_spec_of,
    as_tensor,
    encode_observations,
    to_env_actions,
)
from training.ml.envs import make_env


@dataclass
class Episode:
    """One finished episode: encoded observations (T, obs_dim) float32, the actions the
    environment received (T,) or (T, act_dim), and its rewards (T,) float32."""

    seed: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def true_return(self) -> float:
        return float(self.rewards.sum(dtype=np.float64))


def lockstep_episodes(
    env_id: str,
    *,
    policy,
    seeds: list[int],
    deterministic: bool = False,
    device: torch.device | str = "cpu",
) -> list[Episode]:
    """The episodes of ``seeds``, in that order. policy=None takes uniformly random
    actions, each copy's action space seeded with its episode's seed. The caller seeds
    torch for a stochastic policy."""
    envs = [make_env(env_id) for _ in seeds]
    spec = action_spec_of(envs[0].action_space)
    space = envs[0].observation_space
    steps: list[tuple[list, list, list]] = [([], [], []) for _ in seeds]
    try:
        raw = {}
        for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
            raw[i], _ = env.reset(seed=seed)
            env.action_space.seed(seed)
        while raw:  # the indices of the episodes still running, with their observations
            alive = sorted(raw)
            obs = encode_observations(np.stack([np.asarray(raw[i]) for i in alive]), space)
            if policy is None:
                actions = [np.asarray(envs[i].action_space.sample()) for i in alive]
            else:
                with torch.no_grad():
                    sampled, _, _ = policy.act(
                        as_tensor(obs, device=device), deterministic=deterministic
                    )
                actions = list(to_env_actions(sampled, spec))
            for row, (i, action) in enumerate(zip(alive, actions, strict=True)):
                raw[i], reward, terminated, truncated, _ = envs[i].step(action)
                observations, taken, rewards = steps[i]
                observations.append(obs[row])
                taken.append(action)
                rewards.append(float(reward))
                if terminated or truncated:
                    del raw[i]
    finally:
        for env in envs:
            env.close()
    return [
        Episode(
            seed=seed,
            observations=np.stack(observations).astype(np.float32),
            actions=np.stack(taken),
            rewards=np.asarray(rewards, dtype=np.float32),
        )
        for seed, (observations, taken, rewards) in zip(seeds, steps, strict=True)
    ]
