"""Temporal-difference prediction of v_π on a discrete env: TD(0), n-step TD and off-policy
TD(0) with a per-step importance-sampling correction (lecture notes, "Model-Free
Prediction" and "Off-Policy").

Policies are matrices π[s, a] = π(a|s), shape (S, A). Terminal states have v = 0 (no
bootstrap); an episode cut by a step limit (gymnasium's `truncated`, or
`max_steps_per_episode`) still bootstraps from its last state, which is not terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np

from training.ml.tabular.episodes import discrete_sizes, sample_action, transition_reward
from training.ml.tabular.mdp import RewardOverride


@dataclass(frozen=True)
class TDPredictionConfig:
    gamma: float = 0.9
    step_size: float = 0.05  # α, constant
    episodes: int = 5_000
    max_steps_per_episode: int = 200
    # Off-policy only. "target" is the lecture notes' update, ρ scales the TD target;
    # "td_error" is Sutton & Barto's (eq. 7.9, n = 1), ρ scales the TD error. Both have
    # v_π as their expected fixed point; "td_error" has lower variance when ρ is large.
    importance_correction: Literal["target", "td_error"] = "target"


@dataclass(frozen=True)
class TDPredictionResult:
    v: np.ndarray  # (S,)
    visits: np.ndarray  # how many updates each state received  (S,) int


def td0_prediction(
    *,
    env: gym.Env,
    policy: np.ndarray,
    seed: int,
    config: TDPredictionConfig | None = None,
    reward: RewardOverride = None,
) -> TDPredictionResult:
    """On-policy TD(0) estimate of v_π; `reward` replaces the env's reward."""
    return n_step_td_prediction(
        env=env, policy=policy, n=1, seed=seed, config=config, reward=reward
    )


def n_step_td_prediction(
    *,
    env: gym.Env,
    policy: np.ndarray,
    n: int,
    seed: int,
    config: TDPredictionConfig | None = None,
    reward: RewardOverride = None,
) -> TDPredictionResult:
    """n-step TD estimate of v_π (n = 1 is TD(0); n ≥ episode length is every-visit MC)."""
    config = config or TDPredictionConfig()
    if n < 1:
        raise ValueError(f"n = {n}; n-step TD needs n ≥ 1.")
    n_states, _ = discrete_sizes(env=env, reward=reward)
    _check_policy(policy=policy, env=env, name="policy")
    rng = np.random.default_rng(seed)
    gamma, alpha = config.gamma, config.step_size
    v = np.zeros(n_states)
    visits = np.zeros(n_states, dtype=np.int64)

    for _ in range(config.episodes):
        state, _ = env.reset(seed=int(rng.integers(2**31)))
        states, rewards = [int(state)], [0.0]  # rewards[i] is R_i; R_0 is unused
        end = np.inf  # T, the time the episode ends
        terminated = False
        t = 0
        while True:
            if t < end:
                action = sample_action(probabilities=policy[states[t]], rng=rng)
                next_state, env_reward, terminated, truncated, _ = env.step(action)
                rewards.append(
                    transition_reward(
                        reward=reward,
                        state=states[t],
                        action=action,
                        next_state=int(next_state),
                        env_reward=float(env_reward),
                    )
                )
                states.append(int(next_state))
                if terminated or truncated or t + 1 >= config.max_steps_per_episode:
                    end = t + 1
            tau = t - n + 1  # the time whose estimate is updated
            if tau >= 0:
                last = int(min(tau + n, end))
                # G_τ^(n) = R_{τ+1} + γ R_{τ+2} + ... + γ^{n−1} R_{τ+n} + γ^n v(S_{τ+n})
                g = sum(gamma ** (i - tau - 1) * rewards[i] for i in range(tau + 1, last + 1))
                if last < end or not terminated:  # bootstrap unless S_last is terminal
                    g += gamma ** (last - tau) * v[states[last]]
                # v(S_τ) ← v(S_τ) + α (G_τ^(n) − v(S_τ))
                v[states[tau]] += alpha * (g - v[states[tau]])
                visits[states[tau]] += 1
            if tau == end - 1:
                break
            t += 1
    return TDPredictionResult(v=v, visits=visits)


def off_policy_td0_prediction(
    *,
    env: gym.Env,
    target_policy: np.ndarray,
    behaviour_policy: np.ndarray,
    seed: int,
    config: TDPredictionConfig | None = None,
    reward: RewardOverride = None,
) -> TDPredictionResult:
    """TD(0) estimate of v_π from actions taken by μ, corrected by ρ = π(A_t|S_t)/μ(A_t|S_t).

    μ must cover π: μ(a|s) > 0 wherever π(a|s) > 0. `config.importance_correction` picks
    where ρ_t enters the update.
    """
    config = config or TDPredictionConfig()
    n_states, _ = discrete_sizes(env=env, reward=reward)
    _check_policy(policy=target_policy, env=env, name="target_policy")
    _check_policy(policy=behaviour_policy, env=env, name="behaviour_policy")
    uncovered = np.argwhere((target_policy > 0) & (behaviour_policy == 0))
    if uncovered.size:
        s, a = uncovered[0]
        raise ValueError(
            f"behaviour_policy μ(a={a}|s={s}) = 0 where target_policy π > 0; importance "
            "sampling needs μ to cover π."
        )
    rng = np.random.default_rng(seed)
    gamma, alpha = config.gamma, config.step_size
    v = np.zeros(n_states)
    visits = np.zeros(n_states, dtype=np.int64)

    for _ in range(config.episodes):
        state, _ = env.reset(seed=int(rng.integers(2**31)))
        terminated = truncated = False
        steps = 0
        while not (terminated or truncated) and steps < config.max_steps_per_episode:
            action = sample_action(probabilities=behaviour_policy[state], rng=rng)  # A_t ~ μ
            next_state, env_reward, terminated, truncated, _ = env.step(action)
            r = transition_reward(
                reward=reward,
                state=state,
                action=action,
                next_state=int(next_state),
                env_reward=float(env_reward),
            )
            rho = target_policy[state, action] / behaviour_policy[state, action]
            td_target = r + (0.0 if terminated else gamma * v[int(next_state)])
            if config.importance_correction == "target":
                # v(S_t) ← v(S_t) + α (ρ_t (R_{t+1} + γ v(S_{t+1})) − v(S_t))
                v[state] += alpha * (rho * td_target - v[state])
            else:
                # v(S_t) ← v(S_t) + α ρ_t (R_{t+1} + γ v(S_{t+1}) − v(S_t))
                v[state] += alpha * rho * (td_target - v[state])
            visits[state] += 1
            state = int(next_state)
            steps += 1
    return TDPredictionResult(v=v, visits=visits)


def _check_policy(*, policy: np.ndarray, env: gym.Env, name: str) -> None:
    expected = (int(env.observation_space.n), int(env.action_space.n))
    if policy.shape != expected:
        raise ValueError(f"{name} has shape {policy.shape}; this env needs π[s, a] {expected}.")
    if np.any(policy < 0) or not np.allclose(policy.sum(axis=1), 1.0):
        raise ValueError(f"{name} rows must be probability distributions π(·|s).")
