"""An arena's leaderboard: Bradley-Terry strengths with Davidson's ties, fitted by
(penalised) maximum likelihood, with 95% bootstrap intervals over comparisons.

Davidson 1970, "On extending the Bradley-Terry model to accommodate ties in paired
comparison experiments", eq. 2.1–2.2, with strengths π_i and a tie parameter ν ≥ 0:
    P(i ≻ j) = π_i / (π_i + π_j + ν √(π_i π_j))
    P(i = j) = ν √(π_i π_j) / (π_i + π_j + ν √(π_i π_j))
With scores θ = log π (fixed at mean 0) and d = θ_i − θ_j, dividing by √(π_i π_j):
    P(i ≻ j) = e^{d/2} / Z,   P(j ≻ i) = e^{−d/2} / Z,   P(i = j) = ν / Z,
    Z = e^{d/2} + e^{−d/2} + ν,
so each outcome's log-likelihood is s_o · (d, log ν) − log Z with s = (½, 0) for a win,
(−½, 0) for a loss and (0, 1) for a tie: an exponential family in (d, log ν), whose
Hessian is minus the covariance of s. Newton's method with a backtracking line search
fits every bootstrap resample at once.

A weak Gaussian prior (``ridge``: λ/2 (‖θ‖² + (log ν)²)) keeps the scores finite when a
version won every comparison, and ν above 0 when nobody said "tie"; λ = 0.01 weighs as
much as a hundredth of a comparison. ridge=0 is plain maximum likelihood. When one
version won every comparison with another, every resample agrees and their interval
collapses to a point: the counts (wins, losses) say how much that rests on.

Pure numpy: no Django, no global state (the bootstrap's seed is an argument).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIN, LOSS, TIE = 0, 1, 2  # an outcome, from the first version's side
# s_o: the outcome's coefficients on (d, log ν)
_FEATURES = np.array([[0.5, 0.0], [-0.5, 0.0], [0.0, 1.0]])  # (3, 2)
MIN_LOG_NU = -30.0  # ν ≥ e^{−30}: no ties at all and ridge=0 would send log ν to −∞


@dataclass(frozen=True)
class ArenaFit:
    """The fit of V versions (indices 0..V−1) on N outcomes.

    scores (V,): θ, log-strengths with mean 0; ci_low, ci_high (V,): their 95% bootstrap
    percentile intervals (NaN without outcomes); tie_strength: Davidson's ν; wins, losses,
    ties (V,): each version's counts; bootstrap (B, V): the resamples' scores."""

    scores: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    tie_strength: float
    wins: np.ndarray
    losses: np.ndarray
    ties: np.ndarray
    bootstrap: np.ndarray
    n_outcomes: int

    def difference(self, a: int, b: int) -> tuple[float, float, float]:
        """θ_a − θ_b and its 95% bootstrap percentile interval (NaN without outcomes)."""
        estimate = float(self.scores[a] - self.scores[b])
        if self.n_outcomes == 0:
            return estimate, float("nan"), float("nan")
        low, high = np.percentile(self.bootstrap[:, a] - self.bootstrap[:, b], [2.5, 97.5])
        return estimate, float(low), float(high)

    def share_of_resamples_better(self, a: int, b: int) -> float:
        """The share of bootstrap resamples in which θ_a > θ_b."""
        return float(np.mean(self.bootstrap[:, a] > self.bootstrap[:, b]))


def outcome_codes(p_first: np.ndarray) -> np.ndarray:
    """P[first ≻ second] of each judgement (1, 0, or ½ for a tie) as WIN / LOSS / TIE."""
    p_first = np.asarray(p_first, dtype=np.float64)
    codes = np.full(p_first.shape, TIE, dtype=np.int64)
    codes[p_first > 0.5] = WIN
    codes[p_first < 0.5] = LOSS
    return codes


def davidson_log_likelihood(
    scores: np.ndarray, log_nu: float, first: np.ndarray, second: np.ndarray, outcome: np.ndarray
) -> float:
    """Σ_n log P(outcome_n | θ, ν) of Davidson's model (module docstring), one term per
    (first, second, outcome) row; shapes (V,), (), (N,), (N,), (N,)."""
    d = np.asarray(scores)[first] - np.asarray(scores)[second]  # (N,)
    logits = np.stack([d / 2, -d / 2, np.full_like(d, log_nu)], axis=-1)  # (N, 3)
    log_z = np.logaddexp.reduce(logits, axis=-1)
    return float(np.sum(logits[np.arange(len(d)), outcome] - log_z))


def fit_arena_scores(
    *,
    n_versions: int,
    first: np.ndarray,
    second: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ridge: float = 0.01,
    seed: int = 0,
) -> ArenaFit:
    """Fit Davidson's model to outcomes ``outcome`` (N,) (WIN, LOSS or TIE for version
    ``first`` (N,) against version ``second`` (N,)), and bootstrap it ``n_bootstrap``
    times over ``groups`` (N,): the comparison each outcome belongs to (several
    annotators judging one comparison are resampled together); default, each outcome is
    its own group. Deterministic given ``seed``."""
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=np.int64)
    n = len(outcome)
    if not (len(first) == len(second) == n):
        raise ValueError(
            f"first, second and outcome differ in length: {len(first)}, {len(second)}, {n}."
        )
    if n and (first == second).any():
        raise ValueError("A version cannot be compared with itself.")
    if n and (min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= n_versions):
        raise ValueError(f"Version indices must lie in 0..{n_versions - 1}.")
    wins, losses, ties = _tallies(n_versions, first, second, outcome)
    if n == 0:
        nan = np.full(n_versions, np.nan)
        zeros = np.zeros(n_versions)
        return ArenaFit(zeros, nan, nan.copy(), 0.0, wins, losses, ties,
                        np.zeros((n_bootstrap, n_versions)), 0)  # fmt: skip

    pairs, pair_of, flipped = _pairs(first, second)
    outcome = np.where(flipped & (outcome != TIE), 1 - outcome, outcome)  # as pairs[k] reads
    groups = np.arange(n) if groups is None else np.unique(groups, return_inverse=True)[1]
    n_groups = int(groups.max()) + 1
    per_group = np.zeros((n_groups, len(pairs), 3))  # (G, K, 3): outcomes of each group
    np.add.at(per_group, (groups, pair_of, outcome), 1.0)

    observed = per_group.sum(axis=0)[None]  # (1, K, 3)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_bootstrap)
    resampled = np.einsum("bg,gko->bko", weights.astype(np.float64), per_group)  # (B, K, 3)
    theta, log_nu = _newton(np.concatenate([observed, resampled]), pairs, n_versions, ridge)

    bootstrap = theta[1:]
    low, high = np.percentile(bootstrap, [2.5, 97.5], axis=0)
    return ArenaFit(
        scores=theta[0],
        ci_low=low,
        ci_high=high,
        tie_strength=float(np.exp(log_nu[0])),
        wins=wins,
        losses=losses,
        ties=ties,
        bootstrap=bootstrap,
        n_outcomes=n,
    )


def _tallies(n_versions: int, first, second, outcome):
    wins, losses, ties = (np.zeros(n_versions, dtype=np.int64) for _ in range(3))
    np.add.at(wins, first[outcome == WIN], 1)
    np.add.at(wins, second[outcome == LOSS], 1)
    np.add.at(losses, first[outcome == LOSS], 1)
    np.add.at(losses, second[outcome == WIN], 1)
    np.add.at(ties, first[outcome == TIE], 1)
    np.add.at(ties, second[outcome == TIE], 1)
    return wins, losses, ties


def _pairs(first: np.ndarray, second: np.ndarray):
    """The distinct unordered pairs (K, 2) (lower index first), each outcome's pair, and
    whether it was given the other way round."""
    low, high = np.minimum(first, second), np.maximum(first, second)
    pairs, pair_of = np.unique(np.stack([low, high], axis=1), axis=0, return_inverse=True)
    return pairs, pair_of.reshape(-1), first > second


def _objective(counts, theta, log_nu, pairs, ridge):
    """Σ counts · log P − λ/2 (‖θ‖² + (log ν)²) per batch row; counts (B, K, 3)."""
    d = theta[:, pairs[:, 0]] - theta[:, pairs[:, 1]]  # (B, K)
    logits = np.stack([d / 2, -d / 2, np.broadcast_to(log_nu[:, None], d.shape)], axis=-1)
    log_p = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)  # (B, K, 3)
    penalty = 0.5 * ridge * ((theta**2).sum(axis=1) + log_nu**2)
    return (counts * log_p).sum(axis=(1, 2)) - penalty


def _newton(counts: np.ndarray, pairs: np.ndarray, n_versions: int, ridge: float):
    """θ (B, V) with mean 0 and log ν (B,) maximising _objective for each row of counts
    (B, K, 3): Newton's method, each step halved until the objective does not fall."""
    batch, n_params = counts.shape[0], n_versions + 1
    x = np.zeros((batch, n_params))  # (θ_0 .. θ_{V−1}, log ν)
    x[:, -1] = np.log(0.1)
    # ∂(d, log ν)/∂x for each pair: d = θ_i − θ_j, log ν = x_V.  (K, 2, P)
    jac = np.zeros((len(pairs), 2, n_params))
    jac[np.arange(len(pairs)), 0, pairs[:, 0]] = 1.0
    jac[np.arange(len(pairs)), 0, pairs[:, 1]] = -1.0
    jac[:, 1, -1] = 1.0
    # The likelihood ignores the mean of θ; (Σθ)²/(2V) pins it at 0 without moving the
    # optimum (the likelihood's gradient sums to 0 over θ), and keeps H invertible at λ = 0.
    pin = np.zeros((n_params, n_params))
    pin[:n_versions, :n_versions] = 1.0 / n_versions
    pin += (ridge + 1e-9) * np.eye(n_params)  # 1e-9: solvable when log ν is at its floor
    totals = counts.sum(axis=2)  # (B, K)
    observed_s = counts @ _FEATURES  # (B, K, 2): Σ_o counts_o s_o
    value = _objective(counts, x[:, :-1], x[:, -1], pairs, ridge)
    for _ in range(100):
        theta, log_nu = x[:, :-1], x[:, -1]
        d = theta[:, pairs[:, 0]] - theta[:, pairs[:, 1]]
        logits = np.stack([d / 2, -d / 2, np.broadcast_to(log_nu[:, None], d.shape)], axis=-1)
        p = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))  # (B, K, 3)
        mean_s = p @ _FEATURES  # (B, K, 2)
        cov_s = np.einsum("bko,om,on->bkmn", p, _FEATURES, _FEATURES) - np.einsum(
            "bkm,bkn->bkmn", mean_s, mean_s
        )  # (B, K, 2, 2)
        grad = np.einsum("bkm,kmp->bp", observed_s - totals[..., None] * mean_s, jac)
        grad -= x @ pin
        hessian = -np.einsum("bk,bkmn,kmp,knq->bpq", totals, cov_s, jac, jac) - pin
        step = -np.linalg.solve(hessian, grad[..., None])[..., 0]  # (B, P): ascent
        if np.abs(step).max() < 1e-10:
            break
        scale = np.ones(batch)
        for _ in range(40):  # backtracking, row by row
            trial = x + scale[:, None] * step
            trial[:, -1] = np.maximum(trial[:, -1], MIN_LOG_NU)
            trial_value = _objective(counts, trial[:, :-1], trial[:, -1], pairs, ridge)
            worse = trial_value < value - 1e-12 * np.abs(value)
            if not worse.any():
                break
            scale[worse] /= 2
        x = np.where(worse[:, None], x, trial)  # a row that found no better point stays
        value = np.where(worse, value, trial_value)
    theta = x[:, :-1] - x[:, :-1].mean(axis=1, keepdims=True)
    return theta, x[:, -1]
