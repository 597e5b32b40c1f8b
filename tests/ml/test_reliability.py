"""Annotator reliability (training/ml/reliability.py): EM recovers each annotator's flip
rate, a reliability-weighted reward model ranks unseen pairs better than an unweighted one
when two of six annotators flip 40% of their labels, and DPO's per-pair weights enter its
loss as the soft-label formula says."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from training.ml.control.reward_models import (
    RewardEnsemble,
    RewardModelConfig,
    fit_reward_ensemble,
    segments_to_tensors,
)
from training.ml.control.rollouts import Segment
from training.ml.control.spaces import ActionSpec
from training.ml.lm.dpo import dpo_loss
from training.ml.reliability import (
    ReliabilityConfig,
    em_epochs,
    estimate_flip_rates,
    fit_with_reliability,
    flip_posterior,
    soft_targets,
)

TRUE_FLIP_RATES = [0.0, 0.0, 0.0, 0.0, 0.4, 0.4]  # six annotators, two mistake teachers


def noisy_labels(margins: np.ndarray, rng: np.random.Generator, flip_rates=TRUE_FLIP_RATES):
    """Each pair judged by a random annotator: the sign of the true margin, flipped with
    that annotator's rate. (p_a (N,), annotators (N,))"""
    annotators = rng.integers(len(flip_rates), size=len(margins))
    correct = margins > 0
    flipped = rng.random(len(margins)) < np.asarray(flip_rates)[annotators]
    return np.where(correct ^ flipped, 1.0, 0.0), annotators.tolist()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_the_flip_posterior_is_dawid_and_skenes_eq_2_by_hand():
    margins, labels, eps = torch.tensor([2.0, 2.0, 0.0]), torch.tensor([1.0, 0.0, 0.5]), 0.2
    q = flip_posterior(margins, labels, torch.full((3,), eps))
    agree = (1 - eps) * sigmoid(2.0)
    assert q[0].item() == pytest.approx(eps * sigmoid(-2.0) / (agree + eps * sigmoid(-2.0)))
    disagree = eps * sigmoid(2.0)
    assert q[1].item() == pytest.approx(disagree / (disagree + (1 - eps) * sigmoid(-2.0)))
    assert q[2].item() == 0.0  # a tie is its own flip
    targets = soft_targets(labels, q)
    assert targets.tolist() == pytest.approx([1 - q[0].item(), q[1].item(), 0.5])


def test_em_recovers_the_flip_rates_from_the_true_rewards():
    rng = np.random.default_rng(0)
    rewards = rng.normal(0.0, 3.0, size=400)
    i, j = rng.integers(400, size=(2, 3000))
    margins = rewards[i] - rewards[j]
    flip_rates = [0.0, 0.05, 0.1, 0.2, 0.4, 0.4]
    labels, annotators = noisy_labels(margins, rng, flip_rates)
    # The labels are the sign of the margin, so the model's BT probabilities at 4× the
    # margin are near certain: what the E-step needs to tell a flip from a close call.
    found = estimate_flip_rates(
        margins=torch.tensor(4 * margins),
        p_a=torch.tensor(labels),
        annotators=annotators,
        config=ReliabilityConfig(inner_iterations=50),
    )
    for annotator, truth in enumerate(flip_rates):
        assert found.flip_rates[annotator] == pytest.approx(truth, abs=0.04), annotator
    assert sum(found.n_labels.values()) == 3000


def test_an_annotator_with_few_labels_stays_near_the_prior():
    margins = torch.tensor([5.0, 5.0])
    labels = torch.tensor([0.0, 0.0])  # two flips out of two
    config = ReliabilityConfig(prior_flip_rate=0.1, prior_strength=20.0)
    found = estimate_flip_rates(margins=margins, p_a=labels, annotators=["a", "a"], config=config)
    assert found.flip_rates["a"] < 0.2  # (≈2 + 2) / (2 + 20), not 1


def test_em_shares_the_epochs_of_an_unweighted_fit():
    assert em_epochs(40, 4) == [20, 7, 7, 6]
    assert em_epochs(40, 1) == [40]
    assert em_epochs(3, 4) == [1, 1, 1, 1]  # every fit gets an epoch


def test_fit_with_reliability_drives_the_trainer_with_soft_targets():
    seen = []

    def fit(targets, iteration):
        seen.append((iteration, targets.clone()))
        from training.ml.reliability import Fit

        return Fit(torch.tensor([3.0, 3.0, 3.0, -3.0]))

    found = fit_with_reliability(
        fit=fit, p_a=[1.0, 1.0, 0.5, 1.0], annotators=[1, 1, 1, 2], config=ReliabilityConfig()
    )
    assert [iteration for iteration, _ in seen] == [0, 1, 2, 3]
    # the first fit sees the labels smoothed by the prior's 0.1; a tie stays a tie
    assert seen[0][1].tolist() == pytest.approx([0.9, 0.9, 0.5, 0.9])
    assert found.flip_rates[2] > found.flip_rates[1]  # annotator 2's label disagrees
    assert found.targets[3] < 0.5  # and is believed flipped


# --- a reward ensemble on a small learnable problem ------------------------------------------
W = np.array([1.0, -2.0, 0.5, 1.5], dtype=np.float32)  # r(o, a) = w · o − a²


def synthetic_segments(n: int, rng: np.random.Generator, length: int = 5) -> list[Segment]:
    segments = []
    for _ in range(n):
        obs = rng.normal(size=(length, 4)).astype(np.float32)
        actions = rng.uniform(-1, 1, size=(length, 1)).astype(np.float32)
        rewards = obs @ W - actions[:, 0] ** 2
        segments.append(Segment(observations=obs, actions=actions, true_rewards=rewards))
    return segments


def true_order_accuracy(ensemble: RewardEnsemble, segments_a, segments_b) -> float:
    """Share of pairs the ensemble orders as their true returns do."""
    with torch.no_grad():
        returns = [
            ensemble.segment_returns(*segments_to_tensors(s, device="cpu")).mean(0)
            for s in (segments_a, segments_b)
        ]
    truth = np.array(
        [a.true_return > b.true_return for a, b in zip(segments_a, segments_b, strict=True)]
    )
    return float(((returns[0] > returns[1]).numpy() == truth).mean())


def test_a_reliability_weighted_ensemble_ranks_unseen_pairs_better_than_an_unweighted_one():
    rng = np.random.default_rng(3)
    segments = synthetic_segments(2 * 300, rng)
    a, b = segments[0::2], segments[1::2]
    margins = np.array([x.true_return - y.true_return for x, y in zip(a, b, strict=True)])
    labels, annotators = noisy_labels(margins, rng)
    pairs = list(zip(a, b, labels.tolist(), strict=True))
    test = synthetic_segments(2 * 400, rng)
    config = RewardModelConfig(
        obs_dim=4, action_spec=ActionSpec(discrete=False, dim=1, low=(-1.0,), high=(1.0,))
    )
    accuracy, estimates = {}, None
    for weighted in (False, True):
        ensemble = RewardEnsemble(config, seed=0)
        fit = fit_reward_ensemble(
            ensemble=ensemble,
            pairs=pairs,
            epochs=30,
            seed=0,
            annotators=annotators,
            reliability=ReliabilityConfig() if weighted else None,
        )
        accuracy[weighted] = true_order_accuracy(ensemble, test[0::2], test[1::2])
        estimates = fit.reliability
    assert accuracy[True] > accuracy[False] + 0.02, accuracy
    noisy = [estimates.flip_rates[k] for k in (4, 5)]
    clean = [estimates.flip_rates[k] for k in (0, 1, 2, 3)]
    assert min(noisy) > 0.2 and max(clean) < 0.12, estimates.flip_rates


# --- DPO --------------------------------------------------------------------------------------
def test_dpo_pair_weights_give_the_hand_computed_soft_label_loss():
    beta = 0.5
    # log π_θ(y_w), log π_θ(y_l), log π_ref(y_w), log π_ref(y_l) for two pairs
    pc, pr, rc, rr = [-10.0, -4.0], [-12.0, -3.0], [-11.0, -5.0], [-11.5, -2.5]
    weights = torch.tensor([0.8, 0.3])
    losses, _, _ = dpo_loss(
        torch.tensor(pc),
        torch.tensor(pr),
        torch.tensor(rc),
        torch.tensor(rr),
        beta=beta,
        weights=weights,
    )
    for k, w in enumerate(weights.tolist()):
        h = (pc[k] - rc[k]) - (pr[k] - rr[k])  # 1.5 for both
        by_hand = -w * math.log(sigmoid(beta * h)) - (1 - w) * math.log(sigmoid(-beta * h))
        assert losses[k].item() == pytest.approx(by_hand, rel=1e-6)
    # a label believed flipped (w < ½) costs more, not less, when the policy agrees with it
    plain, _, _ = dpo_loss(*(torch.tensor([x[1]]) for x in (pc, pr, rc, rr)), beta=beta)
    assert losses[1].item() > plain.item()
    same, _, _ = dpo_loss(
        *(torch.tensor(x) for x in (pc, pr, rc, rr)), beta=beta, weights=torch.ones(2)
    )
    unweighted, _, _ = dpo_loss(*(torch.tensor(x) for x in (pc, pr, rc, rr)), beta=beta)
    torch.testing.assert_close(same, unweighted)


def test_dpo_takes_label_smoothing_or_weights_not_both():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="not both"):
        dpo_loss(x, x, x, x, beta=0.1, label_smoothing=0.1, weights=torch.ones(1))


# --- the text reward model ------------------------------------------------------------------
def test_the_lm_reward_model_finds_the_mistaken_annotators_by_cross_fitting(tmp_path_factory):
    import random

    from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm
    from training.ml.lm.lm_reward import LMRewardModel, comparison_groups
    from training.ml.lm.lm_reward_fit import fit_lm_reward_model

    rng = random.Random(0)
    prompts = demo_prompts(20)
    pairs, annotators = [], []
    for n in range(240):  # more "great" is better, as the judges meant
        more, fewer = sorted(rng.sample(range(4), 2), reverse=True)
        text = lambda count: " It was" + " great" * count + " today."  # noqa: E731
        annotator = n % 6
        right = rng.random() >= TRUE_FLIP_RATES[annotator]
        pairs.append((rng.choice(prompts), text(more), text(fewer), 1.0 if right else 0.0))
        annotators.append(annotator)
    groups = [
        dataclasses.replace(group, annotator=annotator)
        for group, annotator in zip(comparison_groups(pairs), annotators, strict=True)
    ]
    model, tokenizer = load_tiny_lm(tmp_path_factory)
    fit = fit_lm_reward_model(
        model=LMRewardModel.from_causal_lm(model, tokenizer, seed=0),
        rankings=groups,
        epochs=4,
        lr=1e-3,
        seed=0,
        reliability=ReliabilityConfig(em_iterations=2),
    )
    rates = fit.reliability.flip_rates
    assert min(rates[4], rates[5]) > max(rates[a] for a in range(4)), rates
    held_out = [w is None for w in fit.label_weights]
    assert sum(held_out) == fit.n_heldout == 48
    weight = {a: [] for a in (0, 4)}
    for w, annotator in zip(fit.label_weights, annotators, strict=True):
        if w is not None and annotator in weight:
            weight[annotator].append(w[0])
    assert np.mean(weight[4]) < np.mean(weight[0]) - 0.1, weight
