"""Segments of (state, action) rows on a discrete env, for people to compare, and their clips.

The tabular loop shows people segments of k steps. Three choices differ from the segments
of training.ml.control.rollouts, and all three come from the tabular MDP (training.ml.tabular.mdp):

- Every segment is the first k steps of an episode of its own, reset with its own seed.
- Exploring starts: a share of the segments start in a uniformly drawn non-terminal state
  that can be reached from the env's start (set as ``env.unwrapped.s`` after the reset, the
  state of gymnasium's toy-text envs), so that the comparisons cover the whole state space
  and not only what the behaviour policy reaches from the start (Sutton & Barto §5.3).
- A segment whose episode terminates before step k stays in its terminal state, taking
  action 0 and earning 0, as in the absorbing MDP; the tabular reward model holds r̂ at 0
  on terminal states, which anchors the scale that preferences leave free.

A segment replays exactly from its episode seed, its start state and its actions (the env's
randomness, slippery ice included, comes from the generator that reset(seed) seeds), so only
the segments chosen for people are rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from training.ml.envs import make_env
from training.ml.tabular.episodes import discrete_sizes, sample_action
from training.ml.tabular.mdp import tabular_mdp_from_env


@dataclass(frozen=True)
class TabularSegment:
    """k steps of one episode; rows after the episode terminated repeat its terminal state."""

    states: np.ndarray  # s_t  (k,) int
    actions: np.ndarray  # a_t  (k,) int
    true_rewards: np.ndarray  # the env's reward after a_t  (k,) float; never shown to r̂
    episode_seed: int  # reset(seed=episode_seed) starts the episode
    start_state: int | None  # the exploring start set after the reset; None: the env's own

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def state_actions(self) -> np.ndarray:
        """(k, 2) int rows of (s_t, a_t), the input of the tabular reward model."""
        return np.stack([self.states, self.actions], axis=1)

    @property
    def true_return(self) -> float:
        return float(np.sum(self.true_rewards))


def behaviour_policy(*, policy: np.ndarray, epsilon: float) -> np.ndarray:
    """(1 − ε) π + ε · uniform: π (S, A) mixed with uniformly random actions. (S, A)"""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon = {epsilon}; it must lie in [0, 1].")
    policy = np.asarray(policy, dtype=np.float64)
    return (1.0 - epsilon) * policy + epsilon / policy.shape[1]


def exploring_start_states(*, env: gym.Env) -> np.ndarray | None:
    """Non-terminal states reachable from the env's start, or None when the env cannot be
    put into a chosen state (it is not a toy-text env with a model ``P``)."""
    if not isinstance(getattr(env.unwrapped, "P", None), dict):
        return None
    mdp = tabular_mdp_from_env(env=env)
    reachable = mdp.initial_distribution > 0
    frontier = reachable.copy()
    while frontier.any():
        successors = mdp.transitions[frontier & ~mdp.terminal].sum(axis=(0, 1)) > 0  # (S,)
        frontier = successors & ~reachable
        reachable |= successors
    return np.flatnonzero(reachable & ~mdp.terminal)


def collect_tabular_segments(
    *,
    env_id: str,
    policy: np.ndarray | None,
    n_segments: int,
    segment_length: int,
    seed: int,
    exploring_start_fraction: float = 0.5,
    env_kwargs: dict | None = None,
) -> list[TabularSegment]:
    """``n_segments`` segments of ``segment_length`` steps acting by ``policy`` (S, A)
    (None: uniformly random actions); a share ``exploring_start_fraction`` of them start in
    a uniformly drawn reachable non-terminal state, where the env allows it.

    Raises ValueError when the env's time limit cuts an episode before ``segment_length``
    steps (such a segment cannot be completed)."""
    if not 0.0 <= exploring_start_fraction <= 1.0:
        raise ValueError(
            f"exploring_start_fraction = {exploring_start_fraction}; it must lie in [0, 1]."
        )
    env = make_env(env_id, **(env_kwargs or {}))
    try:
        n_states, n_actions = discrete_sizes(env=env)
        if policy is not None and np.shape(policy) != (n_states, n_actions):
            raise ValueError(
                f"policy has shape {np.shape(policy)}; {env_id} needs ({n_states}, {n_actions})."
            )
        uniform = np.full(n_actions, 1.0 / n_actions)
        starts = exploring_start_states(env=env) if exploring_start_fraction > 0 else None
        rng = np.random.default_rng(seed)
        segments = []
        for _ in range(n_segments):
            episode_seed = int(rng.integers(2**31))
            state, _ = env.reset(seed=episode_seed)
            start_state = None
            if starts is not None and len(starts) and rng.random() < exploring_start_fraction:
                start_state = int(rng.choice(starts))
                env.unwrapped.s = start_state
                state = start_state
            states, actions, rewards = [], [], []
            terminated = False
            for _ in range(segment_length):
                if terminated:  # absorbing: the terminal state, action 0, reward 0
                    states.append(state)
                    actions.append(0)
                    rewards.append(0.0)
                    continue
                probabilities = uniform if policy is None else policy[state]
                action = sample_action(probabilities=probabilities, rng=rng)
                next_state, reward, terminated, truncated, _ = env.step(action)
                states.append(int(state))
                actions.append(action)
                rewards.append(float(reward))
                state = int(next_state)
                if truncated and not terminated:
                    raise ValueError(
                        f"{env_id}'s time limit ended an episode after {len(actions)} steps; "
                        f"segments of {segment_length} steps need a shorter segment_length."
                    )
            segments.append(
                TabularSegment(
                    states=np.asarray(states, dtype=np.int64),
                    actions=np.asarray(actions, dtype=np.int64),
                    true_rewards=np.asarray(rewards, dtype=np.float64),
                    episode_seed=episode_seed,
                    start_state=start_state,
                )
            )
        return segments
    finally:
        env.close()


def render_tabular_segment(
    *, env_id: str, segment: TabularSegment, env_kwargs: dict | None = None
) -> np.ndarray:
    """The segment's frames, (k, H, W, 3) uint8, from the env's ``rgb_array`` mode: frame t
    shows state s_t (after termination, the terminal state the episode ended in)."""
    env = make_env(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    frames = []
    try:
        env.reset(seed=segment.episode_seed)
        if segment.start_state is not None:
            env.unwrapped.s = segment.start_state
        terminated = False
        for t, action in enumerate(segment.actions):
            frames.append(np.asarray(env.render(), dtype=np.uint8))
            if terminated:
                continue
            replayed = getattr(env.unwrapped, "s", segment.states[t])
            if int(replayed) != int(segment.states[t]):
                raise RuntimeError(
                    f"Replaying the segment of episode seed {segment.episode_seed} on {env_id} "
                    f"reached state {int(replayed)} at step {t}, not "
                    f"{int(segment.states[t])}: the env is not deterministic given its seed."
                )
            _, _, terminated, _, _ = env.step(int(action))
    finally:
        env.close()
    return np.stack(frames)
