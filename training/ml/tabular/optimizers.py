"""The tabular policy optimisers of the loop, chosen by name, run against a learned reward
table r̂(s, a); and how good the resulting policy is on the env's true reward.

    value_iteration, policy_iteration   on the env's model (env.unwrapped.P) with r̂ for its
                                        reward (training.ml.tabular.dynamic_programming)
    mc_control, sarsa, q_learning       on the env itself, r̂ replacing the env's reward
                                        (tabular.monte_carlo, tabular.td_control)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.ml.envs import make_env
from training.ml.tabular.dynamic_programming import (
    deterministic_policy,
    policy_evaluation_closed_form,
    policy_iteration,
    value_iteration,
)
from training.ml.tabular.episodes import discrete_sizes, sample_episode
from training.ml.tabular.mdp import TabularMDP, tabular_mdp_from_env
from training.ml.tabular.monte_carlo import MonteCarloControlConfig, mc_control_glie
from training.ml.tabular.td_control import TDControlConfig, q_learning, sarsa

MODEL_BASED = {"value_iteration": value_iteration, "policy_iteration": policy_iteration}
MODEL_FREE = {"mc_control": mc_control_glie, "sarsa": sarsa, "q_learning": q_learning}


@dataclass(frozen=True)
class TabularEnv:
    """What the loop needs to know of an env with Discrete observations and actions."""

    env_id: str
    n_states: int
    n_actions: int
    mdp: TabularMDP | None  # the env's model with its true reward; None when it has none


def tabular_env(env_id: str) -> TabularEnv:
    """Sizes and, for a toy-text env, the model of ``env_id``. Raises ValueError when its
    spaces are not Discrete."""
    env = make_env(env_id)
    try:
        n_states, n_actions = discrete_sizes(env=env)
        has_model = isinstance(getattr(env.unwrapped, "P", None), dict)
        mdp = tabular_mdp_from_env(env=env) if has_model else None
    finally:
        env.close()
    return TabularEnv(env_id=env_id, n_states=n_states, n_actions=n_actions, mdp=mdp)


def optimise_tabular_policy(
    *,
    env: TabularEnv,
    algorithm: str,
    reward: np.ndarray,
    gamma: float,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, float]]:
    """The greedy action per state (S,) int that ``algorithm`` finds for r̂ (S, A), and its
    metrics. The model-free methods run ``episodes`` episodes, each capped by the env's time
    limit; the model-based ones solve the MDP exactly and ignore it."""
    if algorithm in MODEL_BASED:
        if env.mdp is None:
            raise ValueError(
                f"{algorithm} needs the model of {env.env_id} (env.unwrapped.P), which it "
                "does not expose; use mc_control, sarsa or q_learning."
            )
        solution = MODEL_BASED[algorithm](mdp=env.mdp.with_rewards(rewards=reward), gamma=gamma)
        return solution.policy, {"policy/iterations": solution.iterations}
    if algorithm not in MODEL_FREE:
        raise ValueError(
            f"Unknown tabular algorithm {algorithm!r}: use one of "
            f"{', '.join([*MODEL_BASED, *MODEL_FREE])}."
        )
    if algorithm == "mc_control":
        config = MonteCarloControlConfig(gamma=gamma, episodes=episodes)
    else:
        config = TDControlConfig(gamma=gamma, episodes=episodes)
    gym_env = make_env(env.env_id)
    try:
        result = MODEL_FREE[algorithm](env=gym_env, seed=seed, config=config, reward=reward)
    finally:
        gym_env.close()
    return result.policy, {
        "policy/episodes": len(result.episode_lengths),
        "policy/env_steps": int(result.episode_lengths.sum()),
        "policy/mean_learned_return": float(result.episode_returns.mean()),
    }


def start_value(*, mdp: TabularMDP, actions: np.ndarray, gamma: float) -> float:
    """Σ_s d_0(s) v^π(s) of a deterministic policy on the MDP's reward, with
    v^π = (I − γP^π)⁻¹ r^π."""
    policy = deterministic_policy(actions=actions, n_actions=mdp.n_actions)
    v = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=gamma).v
    return float(mdp.initial_distribution @ v)


def evaluate_tabular_policy(
    *,
    env_id: str,
    policy: np.ndarray,
    reward: np.ndarray,
    episodes: int,
    seed: int,
    max_steps: int = 1_000,
) -> tuple[float, float]:
    """(mean undiscounted true return per episode, mean r̂ per step) of π (S, A) over
    ``episodes`` episodes; each stops at the env's time limit or after ``max_steps`` (an env
    without a time limit, such as CliffWalking, and a policy that loops)."""
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    true_returns, learned, steps = [], 0.0, 0
    try:
        for _ in range(episodes):
            episode = sample_episode(env=env, policy=policy, rng=rng, max_steps=max_steps)
            true_returns.append(float(episode.rewards.sum()))
            learned += float(reward[episode.states[:-1], episode.actions].sum())
            steps += episode.length
    finally:
        env.close()
    return float(np.mean(true_returns)), learned / max(steps, 1)
