"""Fitting the text reward model r_θ (lm_reward.py) to judged groups: InstructGPT's eq. 1
with Llama 2's margins, optional per-criterion heads, a held-out split for the metrics,
and optional annotator reliability weighting (reliability.py) by cross-fitted EM.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from training.ml.lm.lm import forward_dtype
from training.ml.lm.lm_reward import (
    ComparisonGroup,
    LMRewardModel,
    Ranking,
    WeightedPair,
    comparison_groups,
    group_losses,
)
from training.ml.reliability import (
    Fit,
    FlipRates,
    ReliabilityConfig,
    em_epochs,
    fit_with_reliability,
)


@dataclass(frozen=True)
class LMRewardConfig:
    epochs: int = 3
    lr: float = 1e-4  # InstructGPT's 6B RM: 9e-6; the demo LM takes a larger step
    batch_size: int = 8  # comparison groups per step (each of K responses)
    holdout_fraction: float = 0.2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dtype: str = "auto"  # of the forward passes: "auto", "float32" or "bfloat16" (lm.forward_dtype)


@dataclass(frozen=True)
class LMRewardFitMetrics:
    """Losses are eq. 1 averaged over groups; accuracies count the non-tie pairs that r_θ
    (the weighted sum) orders as judged, of the pairs that train it (the judgements' own
    choices and rankings). ``*_accuracy_by_criterion``: per criterion c, the same of the
    pairs that train head r_c (those its ratings order), for each criterion with any. None
    where nothing is held out."""

    train_loss: float
    train_accuracy: float | None
    heldout_loss: float | None
    heldout_accuracy: float | None
    n_train: int  # groups
    n_heldout: int
    n_train_pairs: int
    n_heldout_pairs: int
    reliability: FlipRates | None = field(default=None, compare=False)
    # per group fitted, in the order given: the posterior that each of its pairs' labels is
    # right, judged out of sample (None for a held-out group); with reliability only
    label_weights: list[tuple[float, ...] | None] | None = field(default=None, compare=False)
    train_accuracy_by_criterion: dict[str, float | None] = field(default_factory=dict)
    heldout_accuracy_by_criterion: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float | int | None]:
        dropped = ("reliability", "label_weights")
        return {k: v for k, v in asdict(self).items() if k not in dropped}

    def as_metrics(self) -> dict[str, float | int | None]:
        return {
            "losses/train_loss": self.train_loss,
            "losses/heldout_loss": self.heldout_loss,
            "charts/train_accuracy": self.train_accuracy,
            "charts/heldout_accuracy": self.heldout_accuracy,
            "charts/n_train": self.n_train,
            "charts/n_heldout": self.n_heldout,
            **{
                f"charts/heldout_accuracy/{c}": a
                for c, a in self.heldout_accuracy_by_criterion.items()
            },
        }

    def criterion_metrics(self, prefix: str = "reward") -> dict[str, float]:
        """{prefix/train_accuracy/<c>, prefix/heldout_accuracy/<c>} of each criterion whose
        head trained on ratings, leaving out what could not be measured."""
        found = {}
        for name, by_criterion in (
            ("train_accuracy", self.train_accuracy_by_criterion),
            ("heldout_accuracy", self.heldout_accuracy_by_criterion),
        ):
            found |= {f"{prefix}/{name}/{c}": a for c, a in by_criterion.items() if a is not None}
        return found


@torch.no_grad()
def _evaluate(
    model: LMRewardModel, groups: Sequence[ComparisonGroup], batch_size: int, dtype: torch.dtype
) -> tuple[float | None, float | None, dict[str, float | None]]:
    """(mean group loss, accuracy of r_θ's pairs, {criterion: accuracy of its head's
    pairs}) as judged; an accuracy is None where every such pair is a tie."""
    if not groups:
        return None, None, {}
    losses = []
    right: dict[str | None, int] = {}
    decided: dict[str | None, int] = {}
    for start in range(0, len(groups), batch_size):
        batch = groups[start : start + batch_size]
        batch_losses, differences = group_losses(
            model=model, groups=batch, as_judged=True, dtype=dtype
        )
        losses.append(batch_losses)
        for group, (difference, p) in zip(batch, differences, strict=True):
            correct = ((difference > 0) == (p > 0.5)).tolist()
            for head, ok, p_k in zip(group.pair_heads(), correct, p.tolist(), strict=True):
                right.setdefault(head, 0)
                decided.setdefault(head, 0)
                if p_k != 0.5:
                    right[head] += int(ok)
                    decided[head] += 1
    accuracy = {h: (right[h] / decided[h] if decided[h] else None) for h in decided}
    by_criterion = {h: a for h, a in accuracy.items() if h is not None}
    return torch.cat(losses).mean().item(), accuracy.get(None), by_criterion


def with_targets(groups: Sequence[ComparisonGroup], targets: Tensor) -> list[ComparisonGroup]:
    """The groups, each fitting its share of ``targets`` (ΣC,) in place of its labels."""
    per_group = torch.split(targets, [len(g.pairs) for g in groups])
    return [
        dataclasses.replace(g, targets=tuple(t.tolist()))
        for g, t in zip(groups, per_group, strict=True)
    ]


def _cross_fitted_flip_rates(
    *,
    model: LMRewardModel,
    train: list[ComparisonGroup],
    reliability: ReliabilityConfig,
    schedule: list[int],
    folds: np.ndarray,
    new_optimizer: Callable,
    train_epochs: Callable,
    batch_size: int,
    dtype: torch.dtype,
) -> FlipRates:
    """EM over the training groups' labels (reliability.py), each label judged by a copy of
    r_θ that never saw it: two judges, each fitted on one half of the groups and judging
    the other (cross-fitting; r_θ memorises the labels it is fitted on within a few epochs,
    and would find no flips among them). Held-out groups take no part."""
    labels = [p for g in train for p in g.p_first]
    annotators = [g.annotator for g in train for _ in g.pairs]
    owner = np.repeat(folds, [len(g.pairs) for g in train])  # (ΣC,) the fold of each pair
    judges = [copy.deepcopy(model) for _ in (0, 1)]
    optimizers = [new_optimizer(judge) for judge in judges]

    def fit(targets: Tensor, iteration: int) -> Fit:
        fitted = with_targets(train, targets)
        margins = torch.zeros(len(labels), dtype=torch.float64)
        for fold, (judge, optimizer) in enumerate(zip(judges, optimizers, strict=True)):
            others = [g for g, f in zip(fitted, folds, strict=True) if f != fold]
            train_epochs(judge, optimizer, others, schedule[iteration])
            own = [g for g, f in zip(train, folds, strict=True) if f == fold]
            margins[torch.as_tensor(owner == fold)] = pair_margins(
                judge, own, batch_size=batch_size, dtype=dtype
            ).double()
        return Fit(margins)

    return fit_with_reliability(fit=fit, p_a=labels, annotators=annotators, config=reliability)


@torch.no_grad()
def pair_margins(
    model: LMRewardModel,
    groups: Sequence[ComparisonGroup],
    *,
    batch_size: int,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """r_θ(x, y_i) − r_θ(x, y_j) of every judged pair of ``groups``, in order: (ΣC,)."""
    margins = []
    for start in range(0, len(groups), batch_size):
        _, differences = group_losses(
            model=model, groups=groups[start : start + batch_size], dtype=dtype
        )
        margins += [difference.cpu() for difference, _ in differences]
    return torch.cat(margins) if margins else torch.zeros(0)


def fit_lm_reward_model(
    *,
    model: LMRewardModel,
    rankings: Sequence[Ranking | WeightedPair | ComparisonGroup],
    epochs: int = LMRewardConfig.epochs,
    lr: float = LMRewardConfig.lr,
    batch_size: int = LMRewardConfig.batch_size,
    holdout_fraction: float = LMRewardConfig.holdout_fraction,
    weight_decay: float = LMRewardConfig.weight_decay,
    max_grad_norm: float = LMRewardConfig.max_grad_norm,
    dtype: str = LMRewardConfig.dtype,
    seed: int,
    device: torch.device | str = "cpu",
    reliability: ReliabilityConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> LMRewardFitMetrics:
    """Fit r_θ in place by InstructGPT's eq. 1 on rankings and weighted pairs, and on
    groups whose pairs carry margins or train a criterion's head (ComparisonGroup).

    holdout_fraction of the groups (chosen with seed; a ranking's pairs stay together) is
    held out for the metrics. The model runs without dropout. progress(fraction) after
    each step. The model is moved to device. dtype: what the forward passes compute in
    (lm.forward_dtype; bf16 under autocast, the head and the loss in fp32).

    With ``reliability``, each group's annotator (ComparisonGroup.annotator) gets a flip
    rate learned by EM (training/ml/reliability.py) on the training groups, with two
    cross-fitted copies of r_θ as the E-step's judges (``_cross_fitted_flip_rates``; about
    doubling the time and holding two more copies of the model); r_θ is then fitted on the
    soft targets of eq. (4). The metrics are measured against the labels as judged."""
    groups = comparison_groups(rankings)
    if not groups:
        raise ValueError("No rankings to fit: collect some judgements first.")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}.")
    if reliability is not None and any(g.annotator is None for g in groups):
        raise ValueError("Reliability weighting needs the annotator of every group.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    n_heldout = min(round(holdout_fraction * len(groups)), len(groups) - 1)
    heldout = [groups[i] for i in order[:n_heldout]]
    train = [groups[i] for i in order[n_heldout:]]

    compute_dtype = forward_dtype(dtype, device)
    model.to(device).eval()  # eval: no dropout, gradients still flow
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    total_steps = epochs * steps_per_epoch
    steps_done = 0

    def adamw(net: LMRewardModel) -> torch.optim.Optimizer:
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)

    def train_epochs(net, optimizer, fitted: list[ComparisonGroup], n_epochs: int) -> None:
        nonlocal steps_done
        for _ in range(n_epochs):
            shuffled = [fitted[i] for i in rng.permutation(len(fitted))]
            for start in range(0, len(shuffled), batch_size):
                batch_losses, _ = group_losses(
                    model=net, groups=shuffled[start : start + batch_size], dtype=compute_dtype
                )  # (G,)
                loss = batch_losses.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
                optimizer.step()
                steps_done += 1
                if progress is not None:
                    progress(min(1.0, steps_done / total_steps))

    found = label_weights = None
    fitted = train
    if reliability is not None:
        total_steps *= 2  # the judges' EM takes about as long as the fit itself
        found = _cross_fitted_flip_rates(
            model=model,
            train=train,
            reliability=reliability,
            schedule=em_epochs(epochs, reliability.em_iterations),
            folds=rng.permutation(len(train)) % 2,
            new_optimizer=adamw,
            train_epochs=train_epochs,
            batch_size=batch_size,
            dtype=compute_dtype,
        )
        fitted = with_targets(train, found.targets)
        label_weights = [None] * len(groups)
        per_group = torch.split(found.weights, [len(g.pairs) for g in train])
        for index, weights in zip(order[n_heldout:], per_group, strict=True):
            label_weights[index] = tuple(weights.tolist())
    train_epochs(model, adamw(model), fitted, epochs)

    train_loss, train_accuracy, train_by_criterion = _evaluate(
        model, train, batch_size, compute_dtype
    )
    heldout_loss, heldout_accuracy, heldout_by_criterion = _evaluate(
        model, heldout, batch_size, compute_dtype
    )
    return LMRewardFitMetrics(
        train_loss=float(train_loss),
        train_accuracy=train_accuracy,
        heldout_loss=heldout_loss,
        heldout_accuracy=heldout_accuracy,
        n_train=len(train),
        n_heldout=len(heldout),
        n_train_pairs=sum(len(g.pairs) for g in train),
        n_heldout_pairs=sum(len(g.pairs) for g in heldout),
        reliability=found,
        label_weights=label_weights,
        train_accuracy_by_criterion=train_by_criterion,
        heldout_accuracy_by_criterion=heldout_by_criterion,
    )
