"""Annotator reliability: a Bradley-Terry model whose labels each annotator flips with a
rate ε_a of their own, fitted by EM (Dawid & Skene 1979, with the Bradley-Terry model in
place of their latent true class).

The model. A label ℓ of annotator a on the pair (i, j) says i ≻ j; with probability ε_a
it is a mistake, the true preference flipped:
    p(a says i ≻ j) = (1 − ε_a) · σ(r_i − r_j) + ε_a · σ(r_j − r_i)                  (1)
r being the reward model's return of an item (a segment's Σ r̂(o, a), a response's
r_θ(x, y)). This is the noisy-label Bradley-Terry likelihood (Natarajan et al. 2013,
"Learning with Noisy Labels", for a symmetric flip; per annotator, as Raykar et al. 2010,
"Learning From Crowds"; for preferences, Mitchell 2023's conservative DPO with one ε).

EM. With z_k = 1 when label k is a flip, the complete-data log-likelihood is
Σ_k [(1 − z_k)(log(1 − ε_a) + log σ(s_k)) + z_k (log ε_a + log σ(−s_k))], s_k = ±(r_i − r_j)
signed so that s_k > 0 means the model agrees with the label.
  E-step, the posterior that label k is a flip (Dawid & Skene 1979's E-step, with the
  model's σ(±s_k) for their class prior):
    q_k = ε_a σ(−s_k) / ((1 − ε_a) σ(s_k) + ε_a σ(−s_k))                              (2)
  M-step for ε_a: the mean flip posterior of a's labels under a Beta(α, β) prior, taken as
  its posterior mean (as variational Dawid-Skene, Liu, Peng & Ihler 2012), so an annotator
  with few labels stays near the prior mean α / (α + β):
    ε_a = (Σ_{k ∈ a} q_k + α) / (n_a + α + β)                                        (3)
  M-step for r: the expected complete-data log-likelihood in r is the Bradley-Terry
  cross-entropy against the soft target "label correct with probability 1 − q_k":
    t_k = (1 − q_k) · ℓ_k + q_k · (1 − ℓ_k)        (ℓ_k = P[i ≻ j] as judged: 1 or 0)  (4)
    L(r) = −Σ_k [t_k log σ(r_i − r_j) + (1 − t_k) log σ(r_j − r_i)]
  i.e. the soft-label Bradley-Terry loss (bradley_terry.py takes t_k as its p_a); the pair's
  weight on its own label is w_k = 1 − q_k, the rest goes to the flipped label. Any trainer
  that fits a BT loss on p_a fits this by being handed t_k instead (``fit_with_reliability``
  drives the loop; each trainer only says how to fit on targets and return margins).

A tie (ℓ = ½) is its own flip: it says nothing about ε and keeps t = ½. A ranking's C(K, 2)
pairs are taken as independent labels of its annotator.

E-step margins must come from a model that did not memorise the very label it judges: a
flexible reward model fitted to near-zero loss agrees with every training label, and
every ε would fall to 0 (the demo LM's reward model fits 93% of noisy training labels
after 3 epochs). ``fit_with_reliability`` therefore takes out-of-sample margins from the
trainer (``Fit``): the out-of-bag members of a bootstrap ensemble (control/reward_models.py),
or cross-fitted copies of the model, each judging the half it was not fitted on
(lm/lm_reward_fit.py, and the tabular kind).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

TIE = 0.5


@dataclass(frozen=True)
class ReliabilityConfig:
    """The EM's settings. prior_flip_rate and prior_strength give the Beta(α, β) prior on
    each ε_a: α = strength · rate, β = strength · (1 − rate), i.e. ``prior_strength``
    pseudo-labels of which a ``prior_flip_rate`` share are mistakes."""

    prior_flip_rate: float = 0.1
    prior_strength: float = 10.0
    em_iterations: int = 4  # reward-model fits (M-steps for r); each followed by an E-step
    inner_iterations: int = 20  # E/M-steps for ε at fixed margins after each fit
    max_flip_rate: float = 0.5  # ε at ½ makes a label worthless; above, it would be inverted

    def __post_init__(self) -> None:
        if not 0.0 < self.prior_flip_rate < 0.5:
            raise ValueError(f"prior_flip_rate must be in (0, 0.5), got {self.prior_flip_rate}.")
        if not self.prior_strength > 0:
            raise ValueError(f"prior_strength must be > 0, got {self.prior_strength}.")
        if self.em_iterations < 1 or self.inner_iterations < 1:
            raise ValueError(
                f"em_iterations and inner_iterations must be >= 1, got {self.em_iterations}, "
                f"{self.inner_iterations}."
            )

    @property
    def alpha(self) -> float:
        return self.prior_strength * self.prior_flip_rate

    @property
    def beta(self) -> float:
        return self.prior_strength * (1.0 - self.prior_flip_rate)


def agreement(margins: Tensor, p_a: Tensor) -> Tensor:
    """s_k: the margin r_i − r_j signed by the label, > 0 when the model agrees with it
    (0 for a tie). margins, p_a: (N,) → (N,)."""
    sign = torch.where(p_a > TIE, 1.0, torch.where(p_a < TIE, -1.0, 0.0)).to(margins.dtype)
    return sign * margins


def flip_posterior(margins: Tensor, p_a: Tensor, flip_rates: Tensor) -> Tensor:
    """q_k of eq. (2): the posterior that each label is a flip; 0 for a tie.

    margins: r_i − r_j under the model, (N,). p_a: the judged P[i ≻ j], (N,).
    flip_rates: ε of each label's annotator, (N,)."""
    s = agreement(margins, p_a)  # (N,)
    eps = flip_rates.to(s.dtype).clamp(1e-6, 1 - 1e-6)
    log_correct = torch.log1p(-eps) + F.logsigmoid(s)  # log (1 − ε) σ(s)
    log_flip = torch.log(eps) + F.logsigmoid(-s)  # log ε σ(−s)
    q = torch.exp(log_flip - torch.logaddexp(log_correct, log_flip))
    return torch.where(p_a == TIE, torch.zeros_like(q), q)


def noisy_label_log_likelihood(margins: Tensor, p_a: Tensor, flip_rates: Tensor) -> Tensor:
    """log p(label) of eq. (1) per non-tie label, (N,) (0 for a tie): what EM climbs."""
    s = agreement(margins, p_a)
    eps = flip_rates.to(s.dtype).clamp(1e-6, 1 - 1e-6)
    ll = torch.logaddexp(torch.log1p(-eps) + F.logsigmoid(s), torch.log(eps) + F.logsigmoid(-s))
    return torch.where(p_a == TIE, torch.zeros_like(ll), ll)


def soft_targets(p_a: Tensor, q: Tensor) -> Tensor:
    """t_k of eq. (4): the label kept with probability 1 − q_k, flipped with q_k. (N,)"""
    return (1.0 - q) * p_a + q * (1.0 - p_a)


@dataclass(frozen=True)
class FlipRates:
    """ε per annotator (eq. 3) and how many non-tie labels each gave; ``q``: the flip
    posterior of every label (N,), ``targets``: eq. (4)'s soft targets (N,)."""

    flip_rates: dict[Hashable, float]
    n_labels: dict[Hashable, int]
    q: Tensor
    targets: Tensor

    def per_label(self, annotators: Sequence[Hashable]) -> Tensor:
        """ε of each label's annotator, (N,)."""
        return torch.tensor([self.flip_rates[a] for a in annotators], dtype=torch.float64)

    @property
    def weights(self) -> Tensor:
        """w_k = 1 − q_k: the posterior that each label is correct. (N,)"""
        return 1.0 - self.q


def _annotator_index(annotators: Sequence[Hashable]) -> tuple[list[Hashable], Tensor]:
    names = list(dict.fromkeys(annotators))
    position = {name: n for n, name in enumerate(names)}
    return names, torch.tensor([position[a] for a in annotators], dtype=torch.long)


def estimate_flip_rates(
    *,
    margins: Tensor,
    p_a: Tensor,
    annotators: Sequence[Hashable],
    config: ReliabilityConfig,
    initial: dict[Hashable, float] | None = None,
    valid: Tensor | None = None,
) -> FlipRates:
    """ε_a of every annotator at fixed margins: ``config.inner_iterations`` rounds of the
    E-step (2) and the M-step (3), from ``initial`` (default: the prior's mean).

    margins: r_i − r_j per label under the current model, (N,); p_a: the judged P[i ≻ j],
    (N,); annotators: who gave each label (any hashable id), N of them. valid: (N,) bool,
    the labels whose margins may judge them (out-of-sample ones); the others are left out of
    eq. (3) but still get a q and a target. Ties count for no one."""
    margins = torch.as_tensor(margins, dtype=torch.float64).detach().cpu()
    p_a = torch.as_tensor(p_a, dtype=torch.float64).cpu()
    if margins.shape != p_a.shape or len(annotators) != len(p_a):
        raise ValueError(
            f"margins {tuple(margins.shape)}, p_a {tuple(p_a.shape)} and {len(annotators)} "
            "annotators must all have one entry per label."
        )
    names, index = _annotator_index(annotators)
    prior = config.alpha / (config.alpha + config.beta)
    eps = torch.tensor([(initial or {}).get(name, prior) for name in names], dtype=torch.float64)
    counted = p_a != TIE
    if valid is not None:
        counted = counted & torch.as_tensor(valid, dtype=torch.bool).cpu()
    weight = counted.to(torch.float64)  # (N,)
    n = torch.zeros(len(names), dtype=torch.float64).index_add_(0, index, weight)  # n_a
    for _ in range(config.inner_iterations):
        q = flip_posterior(margins, p_a, eps[index])  # E-step, eq. (2)
        flips = torch.zeros(len(names), dtype=torch.float64).index_add_(0, index, q * weight)
        # M-step, eq. (3): the Beta posterior mean of ε_a
        eps = ((flips + config.alpha) / (n + config.alpha + config.beta)).clamp(
            max=config.max_flip_rate
        )
    q = flip_posterior(margins, p_a, eps[index])
    return FlipRates(
        flip_rates={name: float(e) for name, e in zip(names, eps, strict=True)},
        n_labels={name: int(c) for name, c in zip(names, n, strict=True)},
        q=q,
        targets=soft_targets(p_a, q),
    )


def em_epochs(epochs: int, iterations: int) -> list[int]:
    """How a fit of ``epochs`` epochs is shared among EM's reward-model fits: half in the
    first (its margins give the first estimates of ε), the rest in equal parts after it
    (at least one each), so a reliability-weighted fit trains as long as an unweighted
    one."""
    if iterations == 1:
        return [epochs]
    first = max(1, epochs // 2)
    rest, extra = divmod(max(epochs - first, iterations - 1), iterations - 1)
    return [first, *(rest + (k < extra) for k in range(iterations - 1))]


@dataclass(frozen=True)
class Fit:
    """What a trainer hands back after fitting on targets: the margins r_i − r_j of every
    label (N,) and which of them are out-of-sample (N,) bool, or None when all are."""

    margins: Tensor
    out_of_sample: Tensor | None = None


def fit_with_reliability(
    *,
    fit: Callable[[Tensor, int], Fit],
    p_a: Sequence[float] | Tensor,
    annotators: Sequence[Hashable],
    config: ReliabilityConfig,
) -> FlipRates:
    """EM for eq. (1): ``config.em_iterations`` times, fit the reward model on the current
    soft targets (M-step for r, eq. 4), then re-estimate every ε_a and q_k at its margins
    (E-step and M-step for ε). Returns the estimates at the last fit's margins.

    fit(targets (N,) float64, iteration) trains the model on the targets (continuing from
    the last iteration or starting afresh, as the trainer likes) and returns a Fit. The first
    targets are the labels smoothed by the prior's ε (every q_k = the prior mean), i.e.
    conservative training before anyone's reliability is known."""
    p_a = torch.as_tensor(p_a, dtype=torch.float64)
    prior = config.alpha / (config.alpha + config.beta)
    q = torch.where(p_a == TIE, 0.0, torch.full_like(p_a, prior))
    targets = soft_targets(p_a, q)
    estimate = None
    for iteration in range(config.em_iterations):
        found = fit(targets, iteration)
        estimate = estimate_flip_rates(
            margins=found.margins,
            p_a=p_a,
            annotators=annotators,
            config=config,
            initial=estimate.flip_rates if estimate is not None else None,
            valid=found.out_of_sample,
        )
        targets = estimate.targets
    return estimate
