"""How many comparisons each round of the loop asks for.

Christiano et al. 2017 (appendix A) take a quarter of their labels from the initial policy
and then label at a decaying rate. imitation's preference comparisons spread the rest of a
budget over the iterations in proportion to a schedule of t ∈ [0, 1]; its "hyperbolic"
schedule, 1 / (1 + t), is the ``front_loaded`` one here, so the two are compared alike.
"""

from __future__ import annotations

import numpy as np

SCHEDULES = {
    "uniform": lambda t: np.ones_like(t),
    "front_loaded": lambda t: 1.0 / (1.0 + t),
}


def comparisons_by_round(
    *, budget: int, rounds: int, initial_fraction: float, schedule: str
) -> list[int]:
    """Comparisons for rounds 1 .. rounds + 1, summing to ``budget``: round 1 (from the
    initial policy) gets ``initial_fraction`` of it, the ``rounds`` after it share the rest
    in proportion to ``SCHEDULES[schedule]`` at t = 0 .. 1 (largest remainders rounded up)."""
    if budget < 0 or rounds < 1 or not 0.0 <= initial_fraction <= 1.0:
        raise ValueError(f"budget {budget}, rounds {rounds}, initial_fraction {initial_fraction}")
    first = round(initial_fraction * budget)
    shares = SCHEDULES[schedule](np.linspace(0.0, 1.0, rounds))
    exact = (budget - first) * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    leftover = budget - first - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
    return [first, *counts.tolist()]
