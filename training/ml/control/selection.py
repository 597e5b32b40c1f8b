"""Which pairs of segments to show people next.

Christiano et al. 2017, §2.2.4: "we sample a large number of pairs of trajectory segments
of length k, use each reward predictor in our ensemble to predict which segment will be
preferred from each pair, and then select those trajectories for which the predictions
have the highest variance across ensemble members."
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
import torch

from training.ml.bradley_terry import preference_probability
from training.ml.control.reward_models import RewardEnsemble, segments_to_tensors
from training.ml.control.rollouts import Segment


def random_pairs(n_segments: int, n_pairs: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """n_pairs distinct unordered pairs (i, j), i ≠ j, of segment indices, uniformly at
    random; which one is shown first is random too."""
    n_possible = comb(n_segments, 2)
    if n_pairs > n_possible:
        raise ValueError(
            f"{n_segments} segments make only {n_possible} distinct pairs, not {n_pairs}: "
            "ask for fewer pairs or collect more segments."
        )
    if n_pairs <= 0:
        return []
    if 4 * n_pairs > n_possible:
        # Dense: choose among all pairs.
        all_pairs = [(i, j) for i in range(n_segments) for j in range(i + 1, n_segments)]
        chosen = [all_pairs[k] for k in rng.choice(n_possible, size=n_pairs, replace=False)]
    else:
        # Sparse: rejection-sample, rarely rejects.
        seen: set[tuple[int, int]] = set()
        chosen = []
        while len(chosen) < n_pairs:
            i, j = (int(v) for v in rng.choice(n_segments, size=2, replace=False))
            key = (min(i, j), max(i, j))
            if key not in seen:
                seen.add(key)
                chosen.append(key)
    flips = rng.random(n_pairs) < 0.5
    return [(j, i) if flip else (i, j) for (i, j), flip in zip(chosen, flips, strict=True)]


@torch.no_grad()
def pair_disagreement(
    *, ensemble: RewardEnsemble, segments: Sequence[Segment], pairs: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Var over ensemble members of P̂[a ≻ b] = σ(R̂_a − R̂_b), per pair: (n_pairs,)."""
    if not pairs:
        return np.zeros(0)
    ensemble.eval()
    obs, actions = segments_to_tensors(segments, device=ensemble.device)  # (N, T, ...)
    returns = ensemble.segment_returns(obs, actions)  # (E, N)
    a = torch.as_tensor([i for i, _ in pairs], device=returns.device)
    b = torch.as_tensor([j for _, j in pairs], device=returns.device)
    probabilities = preference_probability(returns[:, a], returns[:, b])  # (E, n_pairs)
    return probabilities.var(dim=0, unbiased=False).cpu().numpy()


def disagreement_pairs(
    *,
    ensemble: RewardEnsemble,
    segments: Sequence[Segment],
    n_pairs: int,
    oversample: int = 10,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """The n_pairs of oversample × n_pairs random candidate pairs on which the ensemble
    members disagree most (highest variance of P̂[a ≻ b]), most disputed first."""
    n_candidates = min(oversample * n_pairs, comb(len(segments), 2))
    candidates = random_pairs(len(segments), n_candidates, rng)
    if n_pairs > len(candidates):
        raise ValueError(
            f"{len(segments)} segments make only {len(candidates)} distinct pairs, not "
            f"{n_pairs}: ask for fewer pairs or collect more segments."
        )
    variance = pair_disagreement(ensemble=ensemble, segments=segments, pairs=candidates)
    top = np.argsort(-variance, kind="stable")[:n_pairs]
    return [candidates[k] for k in top]
