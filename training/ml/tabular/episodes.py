"""What the model-free tabular methods share: discrete env sizes, the reward override,
ε-greedy action selection, sampling an episode under a fixed policy, the control result.

The reward override is how the platform trains on a learned reward: every method takes
`reward`, either a function R(s, a, s') or a table r̂[s, a], used INSTEAD of the env's
reward; None keeps the env's. The env still decides transitions and termination.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from training.ml.tabular.mdp import RewardOverride


@dataclass(frozen=True)
class TabularEpisode:
    """S_0, A_0, R_1, S_1, ..., S_T. rewards[t] is R_{t+1}, the reward after A_t."""

    states: np.ndarray  # (T + 1,) int, includes the last state S_T
    actions: np.ndarray  # (T,) int
    rewards: np.ndarray  # (T,) float
    terminated: bool  # S_T is terminal (v(S_T) = 0); False when cut by a step limit

    @property
    def length(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class TabularControlResult:
    """What a tabular control method learned, and how its episodes went while learning."""

    q: np.ndarray  # (S, A)
    policy: np.ndarray  # greedy action per state, argmax_a q(s, a)  (S,) int
    episode_returns: np.ndarray  # undiscounted Σ R_{t+1} of each training episode  (E,)
    episode_lengths: np.ndarray  # (E,) int


def discrete_sizes(*, env: gym.Env, reward: RewardOverride = None) -> tuple[int, int]:
    """(|S|, |A|) of an env with Discrete spaces; checks a reward table's shape."""
    if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(
            f"{name} has observation space {env.observation_space} and action space "
            f"{env.action_space}; tabular methods need both to be Discrete."
        )
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    if reward is not None and not callable(reward):
        shape = np.shape(reward)
        if shape != (n_states, n_actions):
            raise ValueError(
                f"reward table has shape {shape}; this env needs r̂[s, a] of shape "
                f"({n_states}, {n_actions})."
            )
    return n_states, n_actions


def transition_reward(
    *, reward: RewardOverride, state: int, action: int, next_state: int, env_reward: float
) -> float:
    """R_{t+1}: the override's reward for (S_t, A_t, S_{t+1}), or the env's when None."""
    if reward is None:
        return float(env_reward)
    if callable(reward):
        return float(reward(state, action, next_state))
    return float(reward[state, action])


def greedy_action(*, q_row: np.ndarray, rng: np.random.Generator) -> int:
    """argmax_a q(s, a), ties broken uniformly at random (untried actions all tie at 0)."""
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[rng.integers(len(best))])


def epsilon_greedy_action(*, q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability ε a uniformly random action, otherwise a greedy one: this puts
    π(a|s) = 1 − ε + ε/|A| on the greedy action and ε/|A| on the others (lecture notes)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    return greedy_action(q_row=q_row, rng=rng)


def epsilon_greedy_policy(*, q: np.ndarray, epsilon: float) -> np.ndarray:
    """π[s, a] (S, A) of ε-greedy w.r.t. q, greedy mass split evenly among tied maxima."""
    n_actions = q.shape[1]
    is_best = q == q.max(axis=1, keepdims=True)  # (S, A)
    greedy = is_best / is_best.sum(axis=1, keepdims=True)
    return (1.0 - epsilon) * greedy + epsilon / n_actions


def sample_action(*, probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """A ~ π(·|s) for one row π(·|s) (A,), by inverting its CDF (faster than rng.choice)."""
    index = int(np.searchsorted(np.cumsum(probabilities), rng.random(), side="right"))
    return min(index, len(probabilities) - 1)


def sample_episode(
    *,
    env: gym.Env,
    policy: np.ndarray,
    rng: np.random.Generator,
    max_steps: int,
    reward: RewardOverride = None,
) -> TabularEpisode:
    """One episode with A_t ~ π(·|S_t), π given as (S, A); the env is reset from `rng`, so
    the episode depends on `rng` alone. Cut (terminated=False) after `max_steps`."""
    state, _ = env.reset(seed=int(rng.integers(2**31)))
    states, actions, rewards = [int(state)], [], []
    terminated = truncated = False
    while not (terminated or truncated) and len(actions) < max_steps:
        action = sample_action(probabilities=policy[state], rng=rng)
        next_state, env_reward, terminated, truncated, _ = env.step(action)
        rewards.append(
            transition_reward(
                reward=reward,
                state=state,
                action=action,
                next_state=int(next_state),
                env_reward=float(env_reward),
            )
        )
        actions.append(action)
        states.append(int(next_state))
        state = int(next_state)
    return TabularEpisode(
        states=np.asarray(states, dtype=np.int64),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminated=bool(terminated),
    )


def discounted_returns(*, rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = R_{t+1} + γ R_{t+2} + ... to the end of the episode, for every t. (T,)"""
    returns = np.zeros(len(rewards))
    g = 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g  # G_t = R_{t+1} + γ G_{t+1}
        returns[t] = g
    return returns
