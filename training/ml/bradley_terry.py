"""The Bradley-Terry preference model (Christiano et al. 2017, eq. 1; InstructGPT eq. 1).

P[a ≻ b] = exp(R_a) / (exp(R_a) + exp(R_b)) = σ(R_a − R_b), where R is a summed reward
(a trajectory segment's Σ r̂(o, a), or a language model response's scalar r_θ(x, y)).

With a margin (Llama 2, Touvron et al. 2023, eq. 2) the winner must beat the loser by
m(strength), larger the more strongly the annotator preferred it:
    L = −log σ(r_w − r_l − m(strength)),
so a pair judged "strong" pushes the rewards further apart than one judged "slight". A tie
and a pair without a strength have m = 0, the plain model.
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


def bradley_terry_loss(
    returns_a: Tensor, returns_b: Tensor, p_a: Tensor, margin: Tensor | None = None
) -> Tensor:
    """Cross-entropy between the judged and the modelled preference, averaged.

    −[p log σ(R_a − R_b − m) + (1 − p) log σ(R_b − R_a + m)]; p_a = 1, 0 or 0.5 for a tie.
    margin: m per pair, signed towards a (signed_margins): R_a must exceed R_b by m when a
    won (m > 0), fall short of it by |m| when b won (m < 0); None or 0 is the plain loss.
    returns_a, returns_b, p_a, margin: (B,). Returns a scalar.
    """
    logits = returns_a - returns_b  # (B,)
    if margin is not None:
        logits = logits - margin.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, p_a.to(logits.dtype))


def signed_margins(p_judged: Tensor, margins: Tensor) -> Tensor:
    """m ≥ 0 per pair as bradley_terry_loss takes it: +m when a was judged the winner
    (p = 1), −m when b was (p = 0), 0 for a tie (p = ½): (2p − 1)·m. (B,) each.

    p_judged is the label as judged, not a soft target fitted in its place."""
    return (2.0 * p_judged.to(margins.dtype) - 1.0) * margins


def ranking_to_pairs(k: int) -> list[tuple[int, int]]:
    """All C(k, 2) (better, worse) index pairs of a ranking given best first."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]
