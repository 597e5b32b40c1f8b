"""The Bradley-Terry model and loss, checked against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from training.ml.bradley_terry import (
    PREFERENCE_TARGET,
    bradley_terry_loss,
    preference_probability,
    ranking_to_pairs,
)


def test_preference_probability_is_the_softmax_of_the_two_returns():
    returns_a = torch.tensor([2.0, -1.0, 0.0])
    returns_b = torch.tensor([1.0, 0.5, 0.0])
    expected = [
        math.exp(2.0) / (math.exp(2.0) + math.exp(1.0)),
        math.exp(-1.0) / (math.exp(-1.0) + math.exp(0.5)),
        0.5,
    ]
    assert preference_probability(returns_a, returns_b).tolist() == pytest.approx(expected)


def test_loss_equals_the_hand_computed_cross_entropy_with_a_tie():
    # left preferred, right preferred, and a tie
    returns_a = torch.tensor([3.0, 0.5, 1.2])
    returns_b = torch.tensor([1.0, 2.0, 0.2])
    p_a = torch.tensor([PREFERENCE_TARGET["left"], PREFERENCE_TARGET["right"], 0.5])

    def p(ra: float, rb: float) -> float:  # P[a ≻ b] = e^Ra / (e^Ra + e^Rb)
        return math.exp(ra) / (math.exp(ra) + math.exp(rb))

    expected = (
        -math.log(p(3.0, 1.0))  # a chosen
        + -math.log(p(2.0, 0.5))  # b chosen: −log P[b ≻ a]
        + -(0.5 * math.log(p(1.2, 0.2)) + 0.5 * math.log(p(0.2, 1.2)))  # tie
    ) / 3
    assert bradley_terry_loss(returns_a, returns_b, p_a).item() == pytest.approx(expected, rel=1e-6)
    # log(1 + e^-2) = 0.126928, log(1 + e^-1.5) = 0.201413, ½(log(1 + e^-1) + log(1 + e)) = 0.813262
    assert expected == pytest.approx(0.380534, abs=1e-6)


def test_a_tie_costs_least_when_the_returns_are_equal():
    tie = torch.tensor([0.5])
    at_equal = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([1.0]), tie).item()
    apart = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]), tie).item()
    assert at_equal == pytest.approx(math.log(2))
    assert apart > at_equal


def test_preference_targets_and_ranking_pairs():
    assert PREFERENCE_TARGET == {"left": 1.0, "right": 0.0, "tie": 0.5}
    assert ranking_to_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(ranking_to_pairs(5)) == 10
