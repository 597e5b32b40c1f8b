"""Which pairs of tabular segments to ask about next, and how informative a judged pair was.

Disagreement, for a table. The neural loop asks about the pairs its reward ensemble disagrees
on most (Christiano et al. 2017, §2.2.4). A bootstrap ensemble of tables would not do: every
member holds the r̂(s, a) that no judged segment visits at 0, so all members agree exactly
where the model knows least. We use the uncertainty of the Bradley-Terry fit itself instead.
The return difference of a pair is linear in r̂, ΔR̂ = xᵀ r̂ with x = counts(σ_a) − counts(σ_b)
over the (s, a) entries, so the fit is a logistic regression, and its Laplace approximation
(MacKay 1992; Bishop, PRML §4.5) gives a Gaussian posterior over r̂ with precision

    H = Σ_i σ_i (1 − σ_i) x_i x_iᵀ + λ I,    σ_i = σ(x_iᵀ r̂),

where λ I is the Hessian of the L2 penalty of the fit (training.ml.tabular.reward's loss is
the mean BT loss + w ‖r̂‖², so λ = 2 N w for N training pairs). A candidate pair's
uncertainty is the variance of its predicted preference, by the delta method,

    Var[P̂(a ≻ b)] ≈ (σ_c (1 − σ_c))² · x_cᵀ H⁻¹ x_c.

Unvisited entries keep the prior variance 1/λ, so segments through unexplored states score
high, and pairs the model already orders confidently (σ_c near 0 or 1) score low. Entries of
terminal states are fixed at 0 and carry no uncertainty.

Informativeness, for UCB pair selection (tabular.bandits.UCBPairSelector): the surprise of
a judged pair under the model that chose it, its Bradley-Terry loss
−[p log σ(ΔR̂) + (1 − p) log σ(−ΔR̂)]; a pair the model predicted well teaches it little.
"""

from __future__ import annotations

import numpy as np


def state_action_counts(*, segments: np.ndarray, n_states: int, n_actions: int) -> np.ndarray:
    """How often each segment visits each (s, a): (N, k, 2) int → (N, S·A) float."""
    segments = np.asarray(segments, dtype=np.int64)
    flat = segments[..., 0] * n_actions + segments[..., 1]  # (N, k)
    counts = np.zeros((len(segments), n_states * n_actions))
    np.add.at(counts, (np.arange(len(segments))[:, None], flat), 1.0)
    return counts


def preference_surprise(
    *, reward: np.ndarray, segments_a: np.ndarray, segments_b: np.ndarray, p_a: np.ndarray
) -> np.ndarray:
    """The Bradley-Terry loss of each judged pair under r̂ (S, A): (N,).

    −[p log σ(R̂_a − R̂_b) + (1 − p) log σ(R̂_b − R̂_a)], R̂ = Σ_t r̂(s_t, a_t)."""
    logits = _returns(reward, segments_a) - _returns(reward, segments_b)  # (N,)
    p_a = np.asarray(p_a, dtype=np.float64)
    # −log σ(z) = log(1 + e^{−z}), computed stably
    return p_a * np.logaddexp(0.0, -logits) + (1.0 - p_a) * np.logaddexp(0.0, logits)


def preference_uncertainty(
    *,
    reward: np.ndarray,
    judged_a: np.ndarray,
    judged_b: np.ndarray,
    candidates_a: np.ndarray,
    candidates_b: np.ndarray,
    weight_decay: float,
    terminal: np.ndarray | None = None,
) -> np.ndarray:
    """Var[P̂(a ≻ b)] of each candidate pair under the Laplace posterior of the BT fit of r̂.

    reward: r̂ (S, A), the fit on the judged pairs judged_a, judged_b (N, k, 2) (N may be 0:
    the prior alone). candidates_a, candidates_b: (M, k, 2). weight_decay: w of the fit's
    penalty w ‖r̂‖². terminal: (S,) bool, entries held at 0. Returns (M,)."""
    n_states, n_actions = np.shape(reward)
    free = np.ones((n_states, n_actions), dtype=bool)
    if terminal is not None:
        free[np.asarray(terminal, dtype=bool)] = False
    free = free.ravel()  # (S·A,)

    def features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(a) == 0:
            return np.zeros((0, int(free.sum())))
        x = state_action_counts(segments=a, n_states=n_states, n_actions=n_actions)
        x -= state_action_counts(segments=b, n_states=n_states, n_actions=n_actions)
        return x[:, free]  # x = counts(σ_a) − counts(σ_b)  (N, D)

    r = np.asarray(reward, dtype=np.float64).ravel()[free]  # (D,)
    x_judged, x_candidates = features(judged_a, judged_b), features(candidates_a, candidates_b)
    prior_precision = 2.0 * max(len(x_judged), 1) * weight_decay  # λ = 2 N w
    sigma = _sigmoid(x_judged @ r)  # (N,)
    # H = Σ_i σ_i (1 − σ_i) x_i x_iᵀ + λ I   (Laplace: Hessian of the penalised loss × N)
    h = (x_judged * (sigma * (1 - sigma))[:, None]).T @ x_judged
    h[np.diag_indices_from(h)] += prior_precision
    cholesky = np.linalg.cholesky(h)  # H = L Lᵀ, so xᵀ H⁻¹ x = ‖L⁻¹ x‖²
    solved = np.linalg.solve(cholesky, x_candidates.T)  # (D, M)
    variance_of_difference = (solved**2).sum(axis=0)  # x_cᵀ H⁻¹ x_c  (M,)
    sigma_c = _sigmoid(x_candidates @ r)
    return (sigma_c * (1 - sigma_c)) ** 2 * variance_of_difference


def _returns(reward: np.ndarray, segments: np.ndarray) -> np.ndarray:
    segments = np.asarray(segments, dtype=np.int64)
    return np.asarray(reward)[segments[..., 0], segments[..., 1]].sum(axis=-1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
