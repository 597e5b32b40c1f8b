"""The Bradley-Terry preference model (Christiano et al. 2017, eq. 1; InstructGPT eq. 1).

P[a ≻ b] = exp(R_a) / (exp(R_a) + exp(R_b)) = σ(R_a − R_b), where R is a summed reward
(a trajectory segment's Σ r̂(o, a), or a language model response's scalar r_θ(x, y)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The target probability that the first item is preferred, per judgement choice.
# A skip carries no preference and is never used for fitting.
PREFERENCE_TARGET = {"left": 1.0, "right": 0.0, "tie": 0.5}


def preference_probability(returns_a: Tensor, returns_b: Tensor) -> Tensor:
    """σ(R_a − R_b): the modelled probability that a is preferred to b. Shapes (...,)."""
    return torch.sigmoid(returns_a - returns_b)


def bradley_terry_loss(returns_a: Tensor, returns_b: Tensor, p_a: Tensor) -> Tensor:
    """Cross-entropy between the judged and the modelled preference, averaged.

    −[p log σ(R_a − R_b) + (1 − p) log σ(R_b − R_a)]; p_a = 1, 0 or 0.5 for a tie.
    returns_a, returns_b, p_a: (B,). Returns a scalar.
    """
    logits = returns_a - returns_b  # (B,)
    return F.binary_cross_entropy_with_logits(logits, p_a.to(logits.dtype))


def ranking_to_pairs(k: int) -> list[tuple[int, int]]:
    """All C(k, 2) (better, worse) index pairs of a ranking given best first."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]
