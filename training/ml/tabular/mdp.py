"""A tabular MDP (S, A, p, r, γ) read out of a gymnasium toy-text environment.

The lecture notes' MDP is the tuple (S, A, p, r, γ) with p(s'|s, a) the transition
probability and r(s, a) = E[R | s, a] the expected reward. Gymnasium's toy-text envs
(FrozenLake-v1, FrozenLake8x8-v1, CliffWalking-v1, CliffWalkingSlippery-v1, Taxi-v4;
Taxi-v3 is deprecated in gymnasium 1.4) expose that model as `env.unwrapped.P`:

    P[s][a] = [(probability, next_state, reward, terminated), ...]

We turn it into dense arrays:

    transitions[s, a, s'] = p(s' | s, a)                                  (S, A, S)
    rewards[s, a]         = r(s, a) = Σ_{s'} p(s'|s, a) · R(s, a, s')     (S, A)

Termination: a state entered by a `terminated` transition ends the episode. We make it
absorbing with zero reward (p(s|s, a) = 1, r(s, a) = 0 for every a), so that
v(terminal) = 0 and the Bellman equations hold unchanged on every state. The env's own
entries for such states (CliffWalking lists moves out of its goal) are overwritten. States
that no episode can reach (Taxi's "passenger already delivered, taxi elsewhere") keep the
moves the env lists for them; they never affect values of reachable states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from training.ml.envs import make_env

# A reward used INSTEAD of the env's: a function R(s, a, s'), or a table r̂[s, a] (S, A).
RewardOverride = Callable[[int, int, int], float] | np.ndarray | None


@dataclass(frozen=True)
class TabularMDP:
    """Dense arrays of a finite MDP whose terminal states are absorbing with zero reward."""

    env_id: str
    transitions: np.ndarray  # p(s'|s, a)  (S, A, S)
    rewards: np.ndarray  # r(s, a)  (S, A)
    terminal: np.ndarray  # (S,) bool
    initial_distribution: np.ndarray  # d_0(s), the start-state distribution  (S,)

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]

    def with_rewards(self, *, rewards: np.ndarray) -> TabularMDP:
        """The same dynamics with r(s, a) replaced; terminal rows are forced to 0."""
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"rewards has shape {rewards.shape}; {self.env_id} needs "
                f"({self.n_states}, {self.n_actions})."
            )
        rewards = np.where(self.terminal[:, None], 0.0, rewards)
        return dataclasses.replace(self, rewards=rewards)


def tabular_mdp_from_env(
    *, env: gym.Env, initial_distribution: np.ndarray | None = None
) -> TabularMDP:
    """Read `env.unwrapped.P` into a `TabularMDP`.

    Raises ValueError, naming the env, when it has no tabular model, no discrete spaces,
    no start-state distribution (pass `initial_distribution` then), or a malformed model.
    """
    unwrapped = env.unwrapped
    env_id = env.spec.id if env.spec is not None else type(unwrapped).__name__
    model = getattr(unwrapped, "P", None)
    if not isinstance(model, dict) or not model:
        raise ValueError(
            f"{env_id} exposes no tabular model: env.unwrapped.P is missing. Only toy-text "
            "envs such as FrozenLake-v1, CliffWalking-v1 and Taxi-v4 have one."
        )
    if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        raise ValueError(
            f"{env_id} has observation space {env.observation_space} and action space "
            f"{env.action_space}; a tabular MDP needs both to be Discrete."
        )
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)

    transitions = np.zeros((n_states, n_actions, n_states))
    rewards = np.zeros((n_states, n_actions))
    running_entries = []  # (source, next_state) of transitions that do not terminate
    terminal = np.zeros(n_states, dtype=bool)
    for s in range(n_states):
        for a in range(n_actions):
            for probability, next_state, reward, terminated in model[s][a]:
                if probability == 0.0:
                    continue
                transitions[s, a, int(next_state)] += probability
                rewards[s, a] += probability * reward  # r(s, a) = Σ p · R
                if terminated:
                    terminal[int(next_state)] = True
                else:
                    running_entries.append((s, int(next_state)))

    row_sums = transitions.sum(axis=2)
    if not np.allclose(row_sums, 1.0, atol=1e-8):
        s, a = np.unravel_index(np.argmax(np.abs(row_sums - 1.0)), row_sums.shape)
        raise ValueError(
            f"{env_id}: p(·|s={s}, a={a}) sums to {row_sums[s, a]}, not 1; "
            "env.unwrapped.P is not a probability model."
        )
    if initial_distribution is None:
        initial_distribution = getattr(unwrapped, "initial_state_distrib", None)
    if initial_distribution is None:
        raise ValueError(
            f"{env_id} has no `initial_state_distrib`; pass initial_distribution=(S,) array."
        )
    initial_distribution = np.asarray(initial_distribution, dtype=np.float64)
    if initial_distribution.shape != (n_states,) or not np.isclose(initial_distribution.sum(), 1.0):
        raise ValueError(
            f"{env_id}: the start-state distribution must be a ({n_states},) array summing "
            f"to 1, got shape {initial_distribution.shape}."
        )
    # Taxi lists moves out of terminal and unreachable states that enter a terminal state
    # without terminating; such moves are never taken, so only reachable ones must agree.
    reachable = _reachable_states(
        transitions=transitions, terminal=terminal, start=initial_distribution > 0
    )
    ambiguous = sorted(
        {
            nxt
            for src, nxt in running_entries
            if terminal[nxt] and reachable[src] and not terminal[src]
        }
    )
    if ambiguous:
        raise ValueError(
            f"{env_id}: states {ambiguous} are entered both by terminating and "
            "non-terminating transitions, so they cannot be made absorbing."
        )

    # Terminal states are absorbing with zero reward.
    terminal_states = np.flatnonzero(terminal)
    transitions[terminal_states] = 0.0
    transitions[terminal_states, :, terminal_states] = 1.0  # p(s|s, a) = 1
    rewards[terminal_states] = 0.0

    return TabularMDP(
        env_id=env_id,
        transitions=transitions,
        rewards=rewards,
        terminal=terminal,
        initial_distribution=initial_distribution,
    )


def make_tabular_mdp(*, env_id: str, env_kwargs: dict | None = None) -> TabularMDP:
    """`tabular_mdp_from_env` on `gymnasium.make(env_id, **env_kwargs)`; the env is closed."""
    env = make_env(env_id, **(env_kwargs or {}))
    try:
        return tabular_mdp_from_env(env=env)
    finally:
        env.close()


def expected_reward_table(*, mdp: TabularMDP, reward: RewardOverride) -> np.ndarray:
    """r̂(s, a) for a reward override: a table as is, or Σ_{s'} p(s'|s, a) R(s, a, s').

    None gives the env's own r(s, a). Terminal rows are 0 (absorbing states pay nothing).
    """
    if reward is None:
        return mdp.rewards.copy()
    if callable(reward):
        table = np.zeros((mdp.n_states, mdp.n_actions))
        for s, a, s_next in zip(*np.nonzero(mdp.transitions), strict=True):
            table[s, a] += mdp.transitions[s, a, s_next] * reward(int(s), int(a), int(s_next))
    else:
        table = np.asarray(reward, dtype=np.float64)
    return mdp.with_rewards(rewards=table).rewards


def _reachable_states(
    *, transitions: np.ndarray, terminal: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """States reachable from `start` without passing through a terminal state. (S,) bool."""
    reachable = start.copy()
    frontier = start.copy()
    while frontier.any():
        successors = transitions[frontier & ~terminal].sum(axis=(0, 1)) > 0  # (S,)
        frontier = successors & ~reachable
        reachable |= successors
    return reachable
