"""Synthetic teachers: scripted annotators that judge segments by their true return, with
the irrationalities of B-Pref (Lee et al. 2021, "B-Pref: Benchmarking Preference-Based
Reinforcement Learning", §3.2).

One teacher has every knob; the named presets turn one on each:
    rational  P[a ≻ b] = σ(β (S_a − S_b))  (Bradley-Terry, eq. 2); β = ∞: always the higher
    myopic    S = Σ_t γ^{T−1−t} r_t, so the end of the segment weighs most (γ < 1)
    mistake   the rational answer flipped with probability ε
    equal     "tie" when |R_a − R_b| < equal_threshold
    skip      "skip" when max(R_a, R_b) < skip_threshold (neither is any good)
R is the undiscounted true return, S the (myopically) weighted one used for the choice.
The checks run in B-Pref's order: skip, then equal, then the (noisy) choice. Thresholds are
absolute, in units of the environment's return (B-Pref scales them by the average return).

Anything with a ``true_rewards`` array (T,) can be judged: a Segment, or a text response
whose score is wrapped as a one-element array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, Protocol

import numpy as np

Judgement = Literal["left", "right", "tie", "skip"]


class Judgeable(Protocol):
    true_rewards: np.ndarray  # (T,)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@dataclass(frozen=True)
class SyntheticTeacher:
    beta: float = math.inf  # rationality (inverse temperature) of the Bradley-Terry choice
    gamma: float = 1.0  # myopia: weight γ^{T−1−t} on step t of T
    epsilon: float = 0.0  # probability of a mistake (the choice flipped)
    equal_threshold: float = 0.0  # tie below this return difference (0: never)
    skip_threshold: float = -math.inf  # skip when both returns are below this

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0 (math.inf for deterministic), got {self.beta}.")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}.")
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}.")
        if self.equal_threshold < 0:
            raise ValueError(f"equal_threshold must be >= 0, got {self.equal_threshold}.")

    def score(self, item: Judgeable) -> float:
        """S = Σ_t γ^{T−1−t} r_t: the return as this (possibly myopic) teacher weighs it."""
        rewards = np.asarray(item.true_rewards, dtype=np.float64)
        weights = self.gamma ** np.arange(len(rewards) - 1, -1, -1)  # (T,), last step 1
        return float(np.dot(weights, rewards))

    def judge(self, seg_a: Judgeable, seg_b: Judgeable, rng: np.random.Generator) -> Judgement:
        """ "left" (a preferred), "right" (b preferred), "tie" or "skip"."""
        return_a = float(np.sum(seg_a.true_rewards))
        return_b = float(np.sum(seg_b.true_rewards))
        if max(return_a, return_b) < self.skip_threshold:
            return "skip"
        if abs(return_a - return_b) < self.equal_threshold:
            return "tie"
        difference = self.score(seg_a) - self.score(seg_b)
        if math.isinf(self.beta):
            if difference == 0:
                return "tie"
            prefers_a = difference > 0
        else:
            # Bradley-Terry choice, B-Pref eq. 2: P[a ≻ b] = σ(β (S_a − S_b))
            prefers_a = bool(rng.random() < _sigmoid(self.beta * difference))
        if rng.random() < self.epsilon:
            prefers_a = not prefers_a  # a mistake
        return "left" if prefers_a else "right"

    def rank(self, items: Sequence[Judgeable], rng: np.random.Generator) -> list[int] | None:
        """Indices of ``items`` best first, or None to skip (all below skip_threshold).

        Sorts by the noisy score: with finite β, β·S_i plus Gumbel noise (a Plackett-Luce
        sample, whose pairwise marginals are Bradley-Terry); then each adjacent pair is
        swapped with probability ε. A ranking has no ties: equal_threshold is not used."""
        if not items:
            return []
        returns = [float(np.sum(item.true_rewards)) for item in items]
        if max(returns) < self.skip_threshold:
            return None
        scores = np.array([self.score(item) for item in items])
        if not math.isinf(self.beta):
            scores = self.beta * scores + rng.gumbel(size=len(items))
        ranking = [int(i) for i in np.argsort(-scores, kind="stable")]
        for k in range(len(ranking) - 1):
            if rng.random() < self.epsilon:
                ranking[k], ranking[k + 1] = ranking[k + 1], ranking[k]
        return ranking


# B-Pref's defaults for the teachers that have one; equal and skip need a threshold in
# the environment's own units.
_PRESETS: dict[str, dict[str, float]] = {
    "rational": {},
    "myopic": {"gamma": 0.9},
    "mistake": {"epsilon": 0.1},
    "equal": {},
    "skip": {},
}
_REQUIRED = {"equal": "equal_threshold", "skip": "skip_threshold"}
TEACHER_NAMES = tuple(_PRESETS)


def make_teacher(name: str, **params: float) -> SyntheticTeacher:
    """A named synthetic teacher; params override its preset (beta, gamma, epsilon,
    equal_threshold, skip_threshold). "equal" needs equal_threshold and "skip" needs
    skip_threshold."""
    if name not in _PRESETS:
        raise ValueError(f"Unknown teacher {name!r}: choose one of {', '.join(TEACHER_NAMES)}.")
    allowed = {f.name for f in fields(SyntheticTeacher)}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"Unknown teacher parameter(s) {sorted(unknown)}: use {', '.join(sorted(allowed))}."
        )
    required = _REQUIRED.get(name)
    if required is not None and required not in params:
        raise ValueError(
            f'The "{name}" teacher needs {required}=..., in units of the environment\'s return.'
        )
    return SyntheticTeacher(**{**_PRESETS[name], **params})


def annotator_panel(
    *, rational: int, mistaken: int, epsilon: float, beta: float = math.inf
) -> list[tuple[str, SyntheticTeacher]]:
    """A panel of simulated annotators, each (name, teacher): ``rational`` rational teachers
    (``rational-1``, ...) and ``mistaken`` mistake teachers that flip the rational choice
    with probability ``epsilon`` (``mistake-1``, ...), all with rationality ``beta``. Six
    with two at ε = 0.4 is benchmarks/annotator_noise.py's panel."""
    if rational < 0 or mistaken < 0 or rational + mistaken == 0:
        raise ValueError(f"A panel needs annotators, got {rational} + {mistaken}.")
    good = SyntheticTeacher(beta=beta)
    bad = SyntheticTeacher(beta=beta, epsilon=epsilon)
    return [(f"rational-{n + 1}", good) for n in range(rational)] + [
        (f"mistake-{n + 1}", bad) for n in range(mistaken)
    ]
