"""Dynamic programming on a known tabular MDP: policy evaluation, policy iteration, value
iteration (lecture notes, "Dynamic Programming").

A policy is a matrix π[s, a] = π(a|s) of shape (S, A) whose rows sum to 1; a deterministic
policy is an action per state, (S,) int, turned into a matrix by `deterministic_policy`.
Terminal states of a `TabularMDP` are absorbing with zero reward, so v(terminal) = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.ml.tabular.mdp import TabularMDP


@dataclass(frozen=True)
class DynamicProgrammingConfig:
    """Stopping rule shared by the iterative methods."""

    # Stop when the value is provably within `tolerance` of the fixed point (sup norm):
    # ‖v_{k+1} − v‖∞ ≤ γ/(1 − γ) · ‖v_{k+1} − v_k‖∞ for a γ-contraction.
    tolerance: float = 1e-10
    max_iterations: int = 100_000


@dataclass(frozen=True)
class PolicyEvaluation:
    v: np.ndarray  # v_π  (S,)
    iterations: int  # applications of T^π (0 for the closed form)


@dataclass(frozen=True)
class OptimalSolution:
    v: np.ndarray  # v*  (S,)
    q: np.ndarray  # q*  (S, A)
    policy: np.ndarray  # greedy action per state  (S,) int
    iterations: int  # policy improvements (policy iteration) or sweeps (value iteration)


def deterministic_policy(*, actions: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot π[s, a] (S, A) of an action per state (S,)."""
    return np.eye(n_actions)[np.asarray(actions, dtype=np.int64)]


def policy_dynamics(*, mdp: TabularMDP, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P^π, r^π): P^π[s, s'] = Σ_a π(a|s) p(s'|s, a) (S, S) and r^π[s] = Σ_a π(a|s) r(s, a)."""
    _check_policy(mdp=mdp, policy=policy)
    p_pi = np.einsum("sa,sat->st", policy, mdp.transitions)  # (S, S)
    r_pi = (policy * mdp.rewards).sum(axis=1)  # (S,)
    return p_pi, r_pi


def action_values(*, mdp: TabularMDP, v: np.ndarray, gamma: float) -> np.ndarray:
    """q(s, a) = r(s, a) + γ Σ_{s'} p(s'|s, a) v(s'). Returns (S, A)."""
    return mdp.rewards + gamma * mdp.transitions @ v


def policy_evaluation_closed_form(
    *, mdp: TabularMDP, policy: np.ndarray, gamma: float
) -> PolicyEvaluation:
    """v_π from the Bellman expectation equation in vector form, solved exactly.

    Solved on the non-terminal states N (v = 0 on terminal ones), which also allows γ = 1
    for a policy that terminates with probability 1. Raises ValueError when I − γP^π_NN is
    singular (γ = 1 and a policy that can loop forever).
    """
    _check_gamma(gamma)
    p_pi, r_pi = policy_dynamics(mdp=mdp, policy=policy)
    running = ~mdp.terminal
    p_nn = p_pi[np.ix_(running, running)]
    v = np.zeros(mdp.n_states)
    # v = (I − γ P^π)⁻¹ r^π   (lecture notes, "Markov Decision Processes")
    try:
        v[running] = np.linalg.solve(np.eye(p_nn.shape[0]) - gamma * p_nn, r_pi[running])
    except np.linalg.LinAlgError as error:
        raise ValueError(
            f"I − γP^π is singular on {mdp.env_id} with γ = {gamma}: the policy does not "
            "terminate from every state. Use γ < 1."
        ) from error
    if not np.all(np.isfinite(v)):
        raise ValueError(f"v_π is not finite on {mdp.env_id} with γ = {gamma}; use γ < 1.")
    return PolicyEvaluation(v=v, iterations=0)


def policy_evaluation_iterative(
    *,
    mdp: TabularMDP,
    policy: np.ndarray,
    gamma: float,
    config: DynamicProgrammingConfig | None = None,
) -> PolicyEvaluation:
    """v_π as the fixed point of the Bellman expectation operator T^π, from v_0 = 0."""
    config = config or DynamicProgrammingConfig()
    _check_gamma(gamma)
    p_pi, r_pi = policy_dynamics(mdp=mdp, policy=policy)
    v = np.zeros(mdp.n_states)
    for k in range(1, config.max_iterations + 1):
        # v_{k+1} = T^π v_k = r^π + γ P^π v_k
        v_next = r_pi + gamma * p_pi @ v
        converged = _within_tolerance(v_next=v_next, v=v, gamma=gamma, config=config)
        v = v_next
        if converged:
            return PolicyEvaluation(v=v, iterations=k)
    raise RuntimeError(
        f"Iterative policy evaluation on {mdp.env_id} did not reach tolerance "
        f"{config.tolerance} in {config.max_iterations} sweeps; raise max_iterations."
    )


def policy_iteration(
    *, mdp: TabularMDP, gamma: float, max_iterations: int = 1_000
) -> OptimalSolution:
    """Policy evaluation (closed form, to convergence) + greedy improvement, until stable.

    Starts from action 0 everywhere, so γ < 1 is needed unless that policy terminates.
    """
    _check_gamma(gamma)
    actions = np.zeros(mdp.n_states, dtype=np.int64)
    for k in range(1, max_iterations + 1):
        policy = deterministic_policy(actions=actions, n_actions=mdp.n_actions)
        v = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=gamma).v
        q = action_values(mdp=mdp, v=v, gamma=gamma)
        # π_new(s) = argmax_a q(s, a); keep the current action on ties so the loop stops.
        best = q.max(axis=1)
        current_is_best = q[np.arange(mdp.n_states), actions] >= best - 1e-12 * (1.0 + np.abs(best))
        improved = np.where(current_is_best, actions, q.argmax(axis=1))
        if np.array_equal(improved, actions):
            return OptimalSolution(v=v, q=q, policy=actions, iterations=k)
        actions = improved
    raise RuntimeError(
        f"Policy iteration on {mdp.env_id} did not stabilise in {max_iterations} improvements."
    )


def value_iteration(
    *, mdp: TabularMDP, gamma: float, config: DynamicProgrammingConfig | None = None
) -> OptimalSolution:
    """v* as the fixed point of the Bellman optimality operator T*, from v_0 = 0."""
    config = config or DynamicProgrammingConfig()
    _check_gamma(gamma)
    v = np.zeros(mdp.n_states)
    for k in range(1, config.max_iterations + 1):
        # v_{k+1}(s) = (T* v_k)(s) = max_a [r(s, a) + γ Σ_{s'} p(s'|s, a) v_k(s')]
        v_next = action_values(mdp=mdp, v=v, gamma=gamma).max(axis=1)
        converged = _within_tolerance(v_next=v_next, v=v, gamma=gamma, config=config)
        v = v_next
        if converged:
            q = action_values(mdp=mdp, v=v, gamma=gamma)
            return OptimalSolution(v=v, q=q, policy=q.argmax(axis=1), iterations=k)
    raise RuntimeError(
        f"Value iteration on {mdp.env_id} did not reach tolerance {config.tolerance} in "
        f"{config.max_iterations} sweeps; raise max_iterations or lower γ."
    )


def _within_tolerance(
    *, v_next: np.ndarray, v: np.ndarray, gamma: float, config: DynamicProgrammingConfig
) -> bool:
    change = np.max(np.abs(v_next - v))
    if gamma < 1.0:
        return gamma / (1.0 - gamma) * change <= config.tolerance
    return change <= config.tolerance


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma = {gamma}; the discount factor must lie in [0, 1].")


def _check_policy(*, mdp: TabularMDP, policy: np.ndarray) -> None:
    if policy.shape != (mdp.n_states, mdp.n_actions):
        raise ValueError(
            f"policy has shape {policy.shape}; {mdp.env_id} needs π[s, a] of shape "
            f"({mdp.n_states}, {mdp.n_actions}). Use deterministic_policy() for (S,) actions."
        )
    if np.any(policy < 0) or not np.allclose(policy.sum(axis=1), 1.0):
        raise ValueError("policy rows must be probability distributions π(·|s).")
