"""Rolling a policy out on a gymnasium vector env, and cutting the rollout into segments.

A segment is what annotators compare (Christiano et al. 2017, §2.2: "a trajectory segment
is a sequence of observations and actions σ = ((o_0, a_0), ..., (o_{k-1}, a_{k-1}))").

Segments never cross an episode boundary: a clip that jumps back to the start position
halfway through would confuse the person judging it. Each environment's episode is cut into
consecutive, non-overlapping pieces of ``segment_length`` steps; an episode's last piece
that is shorter than that is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from training.ml.control.lockstep import lockstep_episodes
from training.ml.control.spaces import (
    action_spec_of,
    as_tensor,
    encode_observations,
    to_env_actions,
)
from training.ml.envs import register_platform_envs
from training.ml.seeding import torch_seeded


class ActingPolicy(Protocol):
    """What a rollout needs of a policy (training.ml.control.policies.ActorCritic is one)."""

    def act(self, obs: Tensor, *, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """obs (N, obs_dim) → (actions, log-probabilities (N,), values (N,))."""
        ...


@dataclass
class Segment:
    """T consecutive steps of one episode.

    observations: (T, obs_dim) float32, encoded (a Discrete observation is one-hot).
    actions: (T,) int64 for Discrete actions, (T, act_dim) float32 for Box actions, as the
        environment received them (clipped to the bounds).
    true_rewards: (T,) float32, the environment's own reward. For evaluation and synthetic
        teachers only: a reward model must never see it.
    frames: (T, H, W, 3) uint8 renders, frames[t] showing the state observed as
        observations[t]; None unless the rollout was rendered.
    """

    observations: np.ndarray
    actions: np.ndarray
    true_rewards: np.ndarray
    frames: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def true_return(self) -> float:
        """Σ_t r_t of the environment's own reward."""
        return float(np.sum(self.true_rewards))


def make_vector_env(env_id: str, *, num_envs: int, render: bool = False) -> gym.vector.VectorEnv:
    """A synchronous vector env that resets a finished sub-env within the same step().

    With same-step autoreset the observation returned for a finished sub-env is already the
    next episode's first one; the last observation is in ``info["final_obs"]``."""
    # render_mode only when rendering: not every environment's constructor takes it.
    render_kwargs = {"render_mode": "rgb_array"} if render else {}
    register_platform_envs()
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        **render_kwargs,
    )


class _SegmentBuffer:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.observations: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.frames: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.observations)

    def pop_segment(self) -> Segment:
        segment = Segment(
            observations=np.stack(self.observations).astype(np.float32),
            actions=np.stack(self.actions),
            true_rewards=np.asarray(self.rewards, dtype=np.float32),
            frames=np.stack(self.frames).astype(np.uint8) if self.frames else None,
        )
        self.clear()
        return segment


def collect_segments(
    *,
    env_id: str,
    policy: ActingPolicy | None,
    n_segments: int,
    segment_length: int,
    seed: int,
    render: bool = False,
    num_envs: int = 4,
    device: torch.device | str = "cpu",
    max_env_steps: int | None = None,
) -> list[Segment]:
    """Roll ``policy`` out (stochastically) and return ``n_segments`` segments.

    policy: None samples uniformly random actions; otherwise it must already be on
    ``device``. Segments never cross an episode
    boundary (see the module docstring). render=True also records an RGB frame per step,
    for clips people will watch; leave it off otherwise, rendering is the slow part.
    max_env_steps bounds the rollout (default 1000 × n_segments × segment_length steps):
    a RuntimeError is raised when episodes end too soon to give enough segments.
    """
    if n_segments < 1 or segment_length < 1:
        raise ValueError(
            f"n_segments and segment_length must be >= 1, got {n_segments} and {segment_length}."
        )
    max_env_steps = max_env_steps or 1000 * n_segments * segment_length
    envs = make_vector_env(env_id, num_envs=num_envs, render=render)
    spec = action_spec_of(envs.single_action_space)
    obs_space = envs.single_observation_space
    buffers = [_SegmentBuffer() for _ in range(num_envs)]
    segments: list[Segment] = []
    env_steps = 0
    try:
        raw_obs, _ = envs.reset(seed=seed)
        envs.action_space.seed(seed)
        frames = envs.render() if render else None
        with torch_seeded(seed, device=device):
            while len(segments) < n_segments:
                if env_steps >= max_env_steps:
                    raise RuntimeError(
                        f"Only {len(segments)} of {n_segments} segments of {segment_length} "
                        f"steps after {env_steps} steps of {env_id}: its episodes end sooner. "
                        "Use a shorter segment_length or a policy that survives longer."
                    )
                obs = encode_observations(raw_obs, obs_space)  # (num_envs, obs_dim)
                if policy is None:
                    env_actions = envs.action_space.sample()
                else:
                    with torch.no_grad():
                        actions, _, _ = policy.act(as_tensor(obs, device=device))
                    env_actions = to_env_actions(actions, spec)
                raw_obs, rewards, terminated, truncated, _ = envs.step(env_actions)
                env_steps += num_envs
                dones = np.logical_or(terminated, truncated)
                for i, buffer in enumerate(buffers):
                    buffer.observations.append(obs[i])
                    buffer.actions.append(np.asarray(env_actions[i]))
                    buffer.rewards.append(float(rewards[i]))
                    if frames is not None:
                        buffer.frames.append(np.asarray(frames[i]))
                    if len(buffer) == segment_length:
                        segments.append(buffer.pop_segment())
                    if dones[i]:
                        buffer.clear()  # an episode's short last piece is dropped
                if render:
                    frames = envs.render()
    finally:
        envs.close()
    return segments[:n_segments]


def evaluate_policy(
    *,
    env_id: str,
    policy: ActingPolicy,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    device: torch.device | str = "cpu",
) -> float:
    """Mean true (environment) return of ``episodes`` full episodes (episode_returns)."""
    returns = episode_returns(
        env_id=env_id,
        policy=policy,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        device=device,
    )
    return float(np.mean(returns))


def episode_returns(
    *,
    env_id: str,
    policy: ActingPolicy,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """True (environment) returns of ``episodes`` full episodes, (episodes,); episode i
    starts from reset(seed=seed + i), and all run together (lockstep.py).
    deterministic=True takes the mode of the action distribution. The policy must already
    be on ``device``."""
    with torch_seeded(seed, device=device):
        found = lockstep_episodes(
            env_id,
            policy=policy,
            seeds=[seed + i for i in range(episodes)],
            deterministic=deterministic,
            device=device,
        )
    return np.asarray([episode.true_return for episode in found], dtype=np.float64)
