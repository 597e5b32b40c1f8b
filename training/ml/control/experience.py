"""On-policy experience for the policy optimisers: stepping a vector env with the policy,
the rewards it learns from (learned or the environment's own), and episode statistics.

The environment's own reward is always recorded, so that ``charts/episodic_return`` is the
true return even while the policy learns from a reward model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.ml.control.policies import ActorCritic
from training.ml.control.rollouts import make_vector_env
from training.ml.control.spaces import (
    ActionSpec,
    action_spec_of,
    as_tensor,
    encode_observations,
    observation_dim_of,
    to_env_actions,
)

# reward_fn(observations (N, obs_dim), actions (N,) or (N, act_dim)) -> rewards (N,).
# The actions are the ones the environment received (Box actions already clipped), the
# same as a Segment's. None everywhere means: learn from the environment's own reward.
RewardFn = Callable[[Tensor, Tensor], Tensor]


def training_rewards(
    *,
    reward_fn: RewardFn | None,
    observations: Tensor,
    env_actions: Tensor,
    env_rewards: Tensor,
) -> Tensor:
    """The rewards a policy learns from: reward_fn(obs, actions), or the environment's own
    reward when reward_fn is None. observations (*B, obs_dim), env_actions (*B[, act_dim]),
    env_rewards (*B) → (*B)."""
    if reward_fn is None:
        return env_rewards
    batch_shape = env_rewards.shape
    flat_obs = observations.reshape(-1, observations.shape[-1])  # (N, obs_dim)
    flat_actions = env_actions.reshape(flat_obs.shape[0], *env_actions.shape[len(batch_shape) :])
    with torch.no_grad():
        rewards = reward_fn(flat_obs, flat_actions)  # (N,)
    return rewards.reshape(batch_shape).to(env_rewards)


class EpisodeStats:
    """True returns and lengths of the episodes each sub-env finishes."""

    def __init__(self, num_envs: int) -> None:
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []

    def update(self, true_rewards: np.ndarray, dones: np.ndarray) -> None:
        self._returns += true_rewards
        self._lengths += 1
        for i in np.flatnonzero(dones):
            self.finished_returns.append(float(self._returns[i]))
            self.finished_lengths.append(int(self._lengths[i]))
            self._returns[i] = 0.0
            self._lengths[i] = 0

    def discard_running(self) -> None:
        """Forget the unfinished episodes (their sub-envs are being reset)."""
        self._returns[:] = 0.0
        self._lengths[:] = 0

    def metrics(self, *, recent: int = 20) -> dict[str, float]:
        """charts/episodic_return: mean true return of every episode finished so far;
        charts/recent_episodic_return: of the last ``recent``. NaN before the first."""
        returns, lengths = self.finished_returns, self.finished_lengths
        nan = float("nan")
        return {
            "charts/episodic_return": float(np.mean(returns)) if returns else nan,
            "charts/recent_episodic_return": float(np.mean(returns[-recent:])) if returns else nan,
            "charts/episodic_length": float(np.mean(lengths)) if lengths else nan,
            "charts/episodes": float(len(returns)),
        }


@dataclass
class Rollout:
    """num_steps (S) steps of num_envs (E) sub-envs.

    actions are as sampled (for log π(a|s)); env_actions as stepped (clipped; for r̂).
    next_obs[t] is the observation step t reached — an episode's true last observation
    where it ended, not the next episode's first — so V(next_obs) can bootstrap a
    time-limit truncation. terminated / dones are 0/1 floats; dones = terminated or
    truncated (the episode ends either way; only termination makes V(s') zero)."""

    obs: Tensor  # (S, E, obs_dim)
    actions: Tensor  # (S, E) or (S, E, act_dim)
    env_actions: Tensor  # (S, E) or (S, E, act_dim)
    logprobs: Tensor  # (S, E)
    values: Tensor  # (S, E)
    env_rewards: Tensor  # (S, E)
    next_obs: Tensor  # (S, E, obs_dim)
    terminated: Tensor  # (S, E)
    dones: Tensor  # (S, E)


class VectorRunner:
    """A vector env stepped by a policy, across updates: it keeps the current observation,
    counts environment steps and records the true episodic returns."""

    def __init__(self, *, env_id: str, num_envs: int, seed: int, device: torch.device | str):
        self.envs = make_vector_env(env_id, num_envs=num_envs)
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.obs_space = self.envs.single_observation_space
        self.action_spec: ActionSpec = action_spec_of(self.envs.single_action_space)
        self.obs_dim = observation_dim_of(self.obs_space)
        self.stats = EpisodeStats(num_envs)
        self.env_steps = 0
        self._raw_obs, _ = self.envs.reset(seed=seed)
        self.envs.action_space.seed(seed)

    def check_policy(self, policy: ActorCritic) -> None:
        """Raise if the policy was built for other spaces than this environment's."""
        config = policy.config
        if config.obs_dim != self.obs_dim or config.action_spec != self.action_spec:
            raise ValueError(
                f"The policy expects obs_dim={config.obs_dim}, actions {config.action_spec}; "
                f"the environment has obs_dim={self.obs_dim}, actions {self.action_spec}. "
                "Build the policy with policy_for_env(env_id)."
            )

    def restart_episodes(self) -> None:
        """Reset every sub-env, abandoning the episodes under way (not counted as finished)."""
        self._raw_obs, _ = self.envs.reset()
        self.stats.discard_running()

    def encoded_obs(self) -> Tensor:
        """The current observations, encoded: (E, obs_dim)."""
        return as_tensor(encode_observations(self._raw_obs, self.obs_space), device=self.device)

    def step(self, env_actions: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Step every sub-env; returns (true rewards, reached obs, terminated, dones), all
        (E,...) tensors, where reached obs is the true last observation of a finished one."""
        raw_obs, rewards, terminated, truncated, infos = self.envs.step(env_actions)
        dones = np.logical_or(terminated, truncated)
        reached = raw_obs
        if dones.any():
            reached = np.array(raw_obs, copy=True)
            for i in np.flatnonzero(dones):
                reached[i] = infos["final_obs"][i]
        self._raw_obs = raw_obs
        self.env_steps += self.num_envs
        self.stats.update(np.asarray(rewards, dtype=np.float64), dones)
        return (
            torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
            as_tensor(encode_observations(reached, self.obs_space), device=self.device),
            torch.as_tensor(terminated, dtype=torch.float32, device=self.device),
            torch.as_tensor(dones, dtype=torch.float32, device=self.device),
        )

    def collect(self, policy: ActorCritic, *, num_steps: int) -> Rollout:
        """Step the policy num_steps times in every sub-env (episodes auto-reset)."""
        steps: list[tuple[Tensor, ...]] = []
        for _ in range(num_steps):
            obs = self.encoded_obs()  # (E, obs_dim)
            actions, logprobs, values = policy.act(obs)
            env_actions = to_env_actions(actions, self.action_spec)
            rewards, next_obs, terminated, dones = self.step(env_actions)
            steps.append(
                (obs, actions, as_tensor(env_actions, device=self.device), logprobs, values,
                 rewards, next_obs, terminated, dones)
            )  # fmt: skip
        return Rollout(*(torch.stack(column) for column in zip(*steps, strict=True)))

    def close(self) -> None:
        self.envs.close()
