"""Segments that can be rendered later, by replaying their episode.

Clips are rendered only for the comparisons people will see, but which segments those
are is known only after selection (e.g. by ensemble disagreement over an oversampled
candidate set). So candidates are collected without rendering, on a single environment
whose episode i starts from ``reset(seed=seed + i)``; each segment keeps its episode's
seed and the actions taken from the episode's start. Replaying those actions from the
same reset reproduces the episode exactly (gymnasium environments are deterministic
given the reset seed and the actions), and only the chosen segments' frames are drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from training.ml.control.rollouts import ActingPolicy, Segment
from training.ml.control.spaces import (
    action_spec_of,
    as_tensor,
    encode_observations,
    to_env_actions,
)
from training.ml.envs import make_env
from training.ml.seeding import torch_seeded


@dataclass
class ReplayableSegment:
    """A Segment and how to reproduce it: reset(seed=episode_seed), then play
    ``episode_actions`` (every action from the episode's start to the segment's end);
    the segment is the last ``len(segment)`` of those steps."""

    segment: Segment
    episode_seed: int
    episode_actions: np.ndarray  # (start + T,) or (start + T, act_dim)

    @property
    def start(self) -> int:
        return len(self.episode_actions) - len(self.segment)


def collect_replayable_segments(
    *,
    env_id: str,
    policy: ActingPolicy | None,
    n_segments: int,
    segment_length: int,
    seed: int,
    device: torch.device | str = "cpu",
    max_episodes: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[ReplayableSegment]:
    """Roll ``policy`` out (stochastically; None = uniformly random actions) episode by
    episode and cut each episode into consecutive segments of ``segment_length`` steps
    (an episode's shorter remainder is dropped). progress(fraction found) per episode."""
    env = make_env(env_id)
    spec = action_spec_of(env.action_space)
    env.action_space.seed(seed)
    max_episodes = max_episodes or 100 * n_segments
    found: list[ReplayableSegment] = []
    try:
        with torch_seeded(seed, device=device):
            for episode in range(max_episodes):
                if len(found) >= n_segments:
                    break
                found.extend(
                    _episode_segments(
                        env, policy, spec, seed=seed + episode, length=segment_length, device=device
                    )
                )
                if progress is not None:
                    progress(min(1.0, len(found) / n_segments))
    finally:
        env.close()
    if len(found) < n_segments:
        raise RuntimeError(
            f"Only {len(found)} of {n_segments} segments of {segment_length} steps from "
            f"{env_id}: its episodes are shorter. Use a shorter segment_length."
        )
    return found[:n_segments]


def _episode_segments(env, policy, spec, *, seed: int, length: int, device) -> list:
    raw_obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    done = False
    while not done:
        obs = encode_observations(np.asarray(raw_obs)[None], env.observation_space)  # (1, D)
        if policy is None:
            action = np.asarray(env.action_space.sample())
        else:
            with torch.no_grad():
                sampled, _, _ = policy.act(as_tensor(obs, device=device))
            action = to_env_actions(sampled, spec)[0]
        raw_obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs[0])
        actions.append(action)
        rewards.append(float(reward))
        done = terminated or truncated
    segments = []
    for end in range(length, len(actions) + 1, length):
        segment = Segment(
            observations=np.stack(observations[end - length : end]).astype(np.float32),
            actions=np.stack(actions[end - length : end]),
            true_rewards=np.asarray(rewards[end - length : end], dtype=np.float32),
        )
        segments.append(ReplayableSegment(segment, seed, np.stack(actions[:end])))
    return segments


def render_segment(*, env_id: str, replayable: ReplayableSegment) -> np.ndarray:
    """The segment's frames, (T, H, W, 3) uint8: frame t shows the state observed as
    ``segment.observations[t]``."""
    env = make_env(env_id, render_mode="rgb_array")
    frames = []
    try:
        env.reset(seed=replayable.episode_seed)
        for t, action in enumerate(replayable.episode_actions):
            if t >= replayable.start:
                frames.append(np.asarray(env.render(), dtype=np.uint8))
            env.step(action)
    finally:
        env.close()
    return np.stack(frames)
