"""TD control on a discrete env: SARSA (on-policy) and Q-learning (off-policy), both acting
ε-greedily w.r.t. q (lecture notes, "Model-Free Control" and "Off-Policy").

SARSA evaluates the ε-greedy policy it follows, so near a cliff it learns the value of
stumbling and prefers a safer path; Q-learning evaluates the greedy policy while it
explores, so it learns the shortest path along the edge (Sutton & Barto, Example 6.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from training.ml.tabular.episodes import (
    TabularControlResult,
    discrete_sizes,
    epsilon_greedy_action,
    transition_reward,
)
from training.ml.tabular.mdp import RewardOverride


@dataclass(frozen=True)
class TDControlConfig:
    gamma: float = 1.0
    step_size: float = 0.5  # α
    epsilon: float = 0.1  # exploration of the ε-greedy behaviour, constant
    episodes: int = 500
    max_steps_per_episode: int = 10_000  # an episode cut here is not terminal


def sarsa(
    *,
    env: gym.Env,
    seed: int,
    config: TDControlConfig | None = None,
    reward: RewardOverride = None,
) -> TabularControlResult:
    """SARSA: q(S, A) ← q(S, A) + α (R + γ q(S', A') − q(S, A)), A' ε-greedy.

    `reward` replaces the env's reward.
    """
    return _td_control(env=env, seed=seed, config=config, reward=reward, off_policy=False)


def q_learning(
    *,
    env: gym.Env,
    seed: int,
    config: TDControlConfig | None = None,
    reward: RewardOverride = None,
) -> TabularControlResult:
    """Q-learning: q(S, A) ← q(S, A) + α (R + γ max_a' q(S', a') − q(S, A)).

    `reward` replaces the env's reward.
    """
    return _td_control(env=env, seed=seed, config=config, reward=reward, off_policy=True)


def _td_control(
    *,
    env: gym.Env,
    seed: int,
    config: TDControlConfig | None,
    reward: RewardOverride,
    off_policy: bool,
) -> TabularControlResult:
    config = config or TDControlConfig()
    n_states, n_actions = discrete_sizes(env=env, reward=reward)
    rng = np.random.default_rng(seed)
    gamma, alpha, epsilon = config.gamma, config.step_size, config.epsilon
    q = np.zeros((n_states, n_actions))
    episode_returns, episode_lengths = [], []

    for _ in range(config.episodes):
        state, _ = env.reset(seed=int(rng.integers(2**31)))
        action = epsilon_greedy_action(q_row=q[state], epsilon=epsilon, rng=rng)
        terminated = truncated = False
        steps, total = 0, 0.0
        while not (terminated or truncated) and steps < config.max_steps_per_episode:
            next_state, env_reward, terminated, truncated, _ = env.step(action)
            next_state = int(next_state)
            r = transition_reward(
                reward=reward,
                state=state,
                action=action,
                next_state=next_state,
                env_reward=float(env_reward),
            )
            next_action = epsilon_greedy_action(q_row=q[next_state], epsilon=epsilon, rng=rng)
            if terminated:
                bootstrap = 0.0  # q(terminal, ·) = 0
            elif off_policy:
                bootstrap = q[next_state].max()  # Q-learning: max_a' q(S_{t+1}, a')
            else:
                bootstrap = q[next_state, next_action]  # SARSA: q(S_{t+1}, A_{t+1})
            # q(S_t, A_t) ← q(S_t, A_t) + α (R_{t+1} + γ · bootstrap − q(S_t, A_t))
            # (the notes' Q-learning slide drops γ; Watkins & Dayan 1992 have it)
            q[state, action] += alpha * (r + gamma * bootstrap - q[state, action])
            state, action = next_state, next_action
            steps += 1
            total += r
        episode_returns.append(total)
        episode_lengths.append(steps)

    return TabularControlResult(
        q=q,
        policy=q.argmax(axis=1),
        episode_returns=np.asarray(episode_returns),
        episode_lengths=np.asarray(episode_lengths, dtype=np.int64),
    )
