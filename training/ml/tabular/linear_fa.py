"""Linear value-function approximation v_w(s) = wᵀx(s): the Monte Carlo and TD fixed points
in closed form beside the stochastic-gradient methods that reach them (lecture notes,
"Function Approximation").

Features are a matrix X[s] = x(s)ᵀ of shape (S, d). A terminal state's features are taken
to be 0, whatever X says, so v_w(terminal) = 0 as in the tabular case.

The fixed points (lecture notes):

    w_MC = E_π[x_t x_tᵀ]⁻¹ E_π[G_t x_t]
    w_TD = E_π[x_t (x_t − γ x_{t+1})ᵀ]⁻¹ E_π[R_{t+1} x_t]

With a model, E_π is over the on-policy distribution μ(s) of the visited states, D = diag(μ):
w_MC = (XᵀDX)⁻¹ XᵀD v_π and w_TD = (XᵀD(I − γP^π)X)⁻¹ XᵀD r^π. From sampled episodes,
E_π is the average over every visited step (least squares for MC, LSTD for TD), which is
exactly where gradient MC and semi-gradient TD(0) settle with a step size going to 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.ml.tabular.dynamic_programming import policy_dynamics, policy_evaluation_closed_form
from training.ml.tabular.episodes import TabularEpisode, discounted_returns
from training.ml.tabular.mdp import TabularMDP


@dataclass(frozen=True)
class LinearFAConfig:
    gamma: float = 1.0
    step_size: float = 0.1  # α_0
    # α_k = α_0 · τ / (τ + k) after k updates (Robbins-Monro: Σ α = ∞, Σ α² < ∞), τ below;
    # None keeps α constant, which leaves w jittering around the fixed point.
    step_size_decay_updates: float | None = 100.0
    epochs: int = 1  # passes over the episodes, each in a fresh random order


# --- closed forms from the model --------------------------------------------------------


def on_policy_distribution(*, mdp: TabularMDP, policy: np.ndarray) -> np.ndarray:
    """μ(s): the share of time steps spent in s by episodes following π (S,), 0 on terminals.

    η = d_0ᵀ (I − P^π_NN)⁻¹ is the expected number of visits per episode to each
    non-terminal state (Sutton & Barto eq. 9.2–9.3); μ = η / Σ η. π must terminate.
    """
    p_pi, _ = policy_dynamics(mdp=mdp, policy=policy)
    running = ~mdp.terminal
    p_nn = p_pi[np.ix_(running, running)]
    try:
        visits = np.linalg.solve(
            (np.eye(p_nn.shape[0]) - p_nn).T, mdp.initial_distribution[running]
        )
    except np.linalg.LinAlgError as error:
        raise ValueError(
            f"The policy does not terminate on {mdp.env_id}, so it has no on-policy "
            "distribution over episodes."
        ) from error
    mu = np.zeros(mdp.n_states)
    mu[running] = visits / visits.sum()
    return mu


def mc_fixed_point(
    *, mdp: TabularMDP, policy: np.ndarray, features: np.ndarray, gamma: float
) -> np.ndarray:
    """w_MC = (XᵀDX)⁻¹ XᵀD v_π: the μ-weighted least-squares fit of v_π. Returns (d,)."""
    x = _features(mdp=mdp, features=features)  # (S, d)
    d = np.diag(on_policy_distribution(mdp=mdp, policy=policy))  # (S, S)
    v_pi = policy_evaluation_closed_form(mdp=mdp, policy=policy, gamma=gamma).v
    # w_MC = E_π[x_t x_tᵀ]⁻¹ E_π[G_t x_t], with E[G_t | S_t = s] = v_π(s)
    return _solve(x.T @ d @ x, x.T @ d @ v_pi, what="w_MC")


def td_fixed_point(
    *, mdp: TabularMDP, policy: np.ndarray, features: np.ndarray, gamma: float
) -> np.ndarray:
    """w_TD = (XᵀD(I − γP^π)X)⁻¹ XᵀD r^π: the TD fixed point. Returns (d,)."""
    x = _features(mdp=mdp, features=features)  # (S, d)
    d = np.diag(on_policy_distribution(mdp=mdp, policy=policy))  # (S, S)
    p_pi, r_pi = policy_dynamics(mdp=mdp, policy=policy)
    # w_TD = E_π[x_t (x_t − γ x_{t+1})ᵀ]⁻¹ E_π[R_{t+1} x_t]
    a = x.T @ d @ (x - gamma * p_pi @ x)  # (d, d)
    b = x.T @ d @ r_pi  # (d,)
    return _solve(a, b, what="w_TD")


# --- closed forms from sampled episodes ---------------------------------------------------


def mc_least_squares(
    *, episodes: Sequence[TabularEpisode], features: np.ndarray, gamma: float
) -> np.ndarray:
    """w_MC with E_π replaced by the average over every step of the episodes. (d,)"""
    dim = features.shape[1]
    a, b = np.zeros((dim, dim)), np.zeros(dim)
    for episode in episodes:
        x = features[episode.states[:-1]]  # (T, d)
        returns = discounted_returns(rewards=episode.rewards, gamma=gamma)  # (T,)
        a += x.T @ x  # Σ x_t x_tᵀ
        b += x.T @ returns  # Σ G_t x_t
    return _solve(a, b, what="w_MC")


def lstd(*, episodes: Sequence[TabularEpisode], features: np.ndarray, gamma: float) -> np.ndarray:
    """w_TD with E_π replaced by the average over every step (LSTD, Bradtke & Barto 1996). (d,)"""
    dim = features.shape[1]
    a, b = np.zeros((dim, dim)), np.zeros(dim)
    for episode in episodes:
        x, x_next = _step_features(episode=episode, features=features)  # (T, d) each
        a += x.T @ (x - gamma * x_next)  # Σ x_t (x_t − γ x_{t+1})ᵀ
        b += x.T @ episode.rewards  # Σ R_{t+1} x_t
    return _solve(a, b, what="w_TD")


# --- stochastic gradient ----------------------------------------------------------------


def gradient_mc(
    *,
    episodes: Sequence[TabularEpisode],
    features: np.ndarray,
    seed: int,
    config: LinearFAConfig | None = None,
) -> np.ndarray:
    """Gradient Monte Carlo: Δw = α (G_t − v_w(S_t)) x_t, the notes' SGD step with v_π(S_t)
    replaced by its sample G_t. Returns w (d,)."""
    config = config or LinearFAConfig()
    rng = np.random.default_rng(seed)
    samples = [
        (
            features[episode.states[:-1]],
            discounted_returns(rewards=episode.rewards, gamma=config.gamma),
        )
        for episode in episodes
    ]
    w = np.zeros(features.shape[1])
    updates = 0
    for _ in range(config.epochs):
        for index in rng.permutation(len(samples)):
            x, returns = samples[index]
            for x_t, g_t in zip(x, returns, strict=True):
                alpha = _step_size(config=config, updates=updates)
                # Δw = α (G_t − wᵀx_t) x_t
                w += alpha * (g_t - w @ x_t) * x_t
                updates += 1
    return w


def semi_gradient_td0(
    *,
    episodes: Sequence[TabularEpisode],
    features: np.ndarray,
    seed: int,
    config: LinearFAConfig | None = None,
) -> np.ndarray:
    """Semi-gradient TD(0): Δw = α (R_{t+1} + γ v_w(S_{t+1}) − v_w(S_t)) x_t; the target is
    not differentiated. Returns w (d,)."""
    config = config or LinearFAConfig()
    rng = np.random.default_rng(seed)
    samples = [
        (*_step_features(episode=episode, features=features), episode.rewards)
        for episode in episodes
    ]
    w = np.zeros(features.shape[1])
    updates = 0
    for _ in range(config.epochs):
        for index in rng.permutation(len(samples)):
            x, x_next, rewards = samples[index]
            for x_t, x_t1, r_t1 in zip(x, x_next, rewards, strict=True):
                alpha = _step_size(config=config, updates=updates)
                # δ_t = R_{t+1} + γ wᵀx_{t+1} − wᵀx_t;  Δw = α δ_t x_t
                delta = r_t1 + config.gamma * (w @ x_t1) - w @ x_t
                w += alpha * delta * x_t
                updates += 1
    return w


# --- helpers ----------------------------------------------------------------------------


def _step_size(*, config: LinearFAConfig, updates: int) -> float:
    if config.step_size_decay_updates is None:
        return config.step_size
    tau = config.step_size_decay_updates
    return config.step_size * tau / (tau + updates)


def _features(*, mdp: TabularMDP, features: np.ndarray) -> np.ndarray:
    if features.ndim != 2 or features.shape[0] != mdp.n_states:
        raise ValueError(
            f"features has shape {features.shape}; {mdp.env_id} needs X of shape "
            f"({mdp.n_states}, d), one row x(s) per state."
        )
    return np.where(mdp.terminal[:, None], 0.0, features)  # x(terminal) = 0


def _step_features(
    *, episode: TabularEpisode, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(x_t, x_{t+1}) for every step, x_{t+1} = 0 when S_{t+1} ends the episode. (T, d) each."""
    x = features[episode.states[:-1]]
    x_next = features[episode.states[1:]].copy()
    if episode.terminated:
        x_next[-1] = 0.0  # v_w(terminal) = 0
    return x, x_next


def _solve(a: np.ndarray, b: np.ndarray, *, what: str) -> np.ndarray:
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError as error:
        raise ValueError(
            f"{what}: the feature matrix is singular on the visited states; drop linearly "
            "dependent features or sample more episodes."
        ) from error
