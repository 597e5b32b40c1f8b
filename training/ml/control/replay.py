"""Segments that can be rendered later, by replaying their episode.

Clips are rendered only for the comparisons people will see, but which segments those
are is known only after selection (e.g. by ensemble disagreement over an oversampled
candidate set). So candidates are collected without rendering, on copies of the
environment whose episode i starts from ``reset(seed=seed + i)``; each segment keeps its
episode's seed and the actions taken from the episode's start. Replaying those actions from the
same reset reproduces the episode exactly (gymnasium environments are deterministic
given the reset seed and the actions), and only the chosen segments' frames are drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from training.ml.control.lockstep import Episode, lockstep_episodes
from training.ml.control.rollouts import ActingPolicy, Segment
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


MAX_LOCKSTEP = 64  # episodes run together at most


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
    """Roll ``policy`` out (stochastically; None = uniformly random actions) and cut each
    episode into consecutive segments of ``segment_length`` steps (an episode's shorter
    remainder is dropped). Episodes run in batches, together (lockstep.py): first one, then
    as many as the segments per episode seen so far say are still needed.
    progress(fraction found) after each batch."""
    max_episodes = max_episodes or 100 * n_segments
    found: list[ReplayableSegment] = []
    episodes = 0
    with torch_seeded(seed, device=device):
        while len(found) < n_segments and episodes < max_episodes:
            per_episode = len(found) / episodes if episodes else 0.0
            wanted = (
                int(np.ceil((n_segments - len(found)) / per_episode))
                if per_episode
                else episodes + 1
            )
            batch = min(wanted, MAX_LOCKSTEP, max_episodes - episodes)
            for episode in lockstep_episodes(
                env_id,
                policy=policy,
                seeds=[seed + episodes + i for i in range(batch)],
                device=device,
            ):
                found.extend(_episode_segments(episode, length=segment_length))
            episodes += batch
            if progress is not None:
                progress(min(1.0, len(found) / n_segments))
    if len(found) < n_segments:
        raise RuntimeError(
            f"Only {len(found)} of {n_segments} segments of {segment_length} steps from "
            f"{env_id}: its episodes are shorter. Use a shorter segment_length."
        )
    return found[:n_segments]


def _episode_segments(episode: Episode, *, length: int) -> list[ReplayableSegment]:
    segments = []
    for end in range(length, len(episode.actions) + 1, length):
        segment = Segment(
            observations=episode.observations[end - length : end],
            actions=episode.actions[end - length : end],
            true_rewards=episode.rewards[end - length : end],
        )
        segments.append(ReplayableSegment(segment, episode.seed, episode.actions[:end]))
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
