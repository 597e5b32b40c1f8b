"""How many labels reach a target: an inverse power law fitted to a learning curve.

A reward model's held-out error (1 − accuracy), or a tabular policy's regret, falls with
the number of labels n roughly as a power law towards a floor (the error annotator noise
leaves): y(n) = y∞ + b·n^(−c) (the "inverse power law" of learning curves; Figueroa et al.
2012, Hestness et al. 2017). For each candidate floor y∞ below every observation, log(y −
y∞) = log b − c·log n is a straight line, fitted by least squares; the floor with the
smallest squared error in y wins. The labels that reach a target y* > y∞ are then
n* = (b / (y* − y∞))^(1/c); a target at or below the floor is not reached on this curve.
The interval resamples the curve's points (bootstrap) and refits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """y(n) = floor + scale · n^(−exponent)."""

    floor: float
    scale: float
    exponent: float

    def __call__(self, n: np.ndarray | float) -> np.ndarray | float:
        return self.floor + self.scale * np.power(n, -self.exponent)

    def labels_for(self, target: float) -> float:
        """n at which y(n) = target; inf when the target is at or below the floor, or the
        curve does not fall."""
        if target <= self.floor or self.exponent <= 0 or self.scale <= 0:
            return float("inf")
        return float((self.scale / (target - self.floor)) ** (1.0 / self.exponent))


@dataclass(frozen=True)
class Forecast:
    """``labels`` (total) at which the curve reaches ``target``, with a 95% interval;
    inf where it is not reached."""

    target: float
    labels: float
    ci_low: float
    ci_high: float
    curve: PowerLaw


def fit_power_law(n: np.ndarray, y: np.ndarray, *, floors: int = 64) -> PowerLaw:
    """The inverse power law through the points (n_i, y_i), y ≥ 0 falling with n > 0."""
    n, y = np.asarray(n, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(np.unique(n)) < 2:
        raise ValueError("a learning curve needs points at two or more label counts")
    lowest = float(y.min())
    if lowest <= 0:  # an observation at 0: the floor is 0
        candidates = np.zeros(1)
    else:  # from 0 up to just below the lowest observation
        candidates = np.linspace(0.0, lowest, floors, endpoint=False)
    gap = y[None, :] - candidates[:, None]  # (F, N), all > 0 where lowest > 0
    if np.any(gap <= 0):
        return PowerLaw(floor=0.0, scale=0.0, exponent=0.0)  # already at the floor
    # Least squares of log(gap) on log(n), for every candidate floor at once.
    x = np.log(n) - np.log(n).mean()  # (N,)
    log_gap = np.log(gap)  # (F, N)
    slope = (log_gap * x).sum(axis=1) / (x**2).sum()  # (F,)
    intercept = log_gap.mean(axis=1) - slope * np.log(n).mean()  # (F,)
    fitted = candidates[:, None] + np.exp(intercept)[:, None] * np.power(n, slope[:, None])
    best = int(np.argmin(((fitted - y) ** 2).sum(axis=1)))
    return PowerLaw(
        floor=float(candidates[best]),
        scale=float(np.exp(intercept[best])),
        exponent=float(-slope[best]),
    )


def forecast_labels(
    n: np.ndarray, y: np.ndarray, *, target: float, resamples: int = 500, seed: int = 0
) -> Forecast:
    """Labels at which the fitted curve of (n, y) reaches ``target`` (a y, lower is
    better), with a 95% bootstrap interval over the points."""
    n, y = np.asarray(n, dtype=np.float64), np.asarray(y, dtype=np.float64)
    curve = fit_power_law(n, y)
    rng = np.random.default_rng(seed)
    # A resample needs as many label counts as a floor, a scale and an exponent (or all
    # there are): fewer fit a curve through two points, which says nothing of the floor.
    distinct = min(3, len(np.unique(n)))
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, len(n), size=len(n))
        if len(np.unique(n[pick])) < distinct:
            continue
        draws.append(fit_power_law(n[pick], y[pick]).labels_for(target))
    if draws:  # percentiles of actual draws: an unreached target's inf stays inf
        low = np.percentile(draws, 2.5, method="lower")
        high = np.percentile(draws, 97.5, method="higher")
    else:
        low = high = np.inf
    return Forecast(
        target=target,
        labels=curve.labels_for(target),
        ci_low=float(low),
        ci_high=float(high),
        curve=curve,
    )
