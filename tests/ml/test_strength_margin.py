"""Bradley–Terry with Llama 2's margin: −log σ(r_w − r_l − m(strength)), by hand."""

from __future__ import annotations

import math

import pytest
import torch

from training.ml.bradley_terry import bradley_terry_loss, signed_margins


def test_the_margin_loss_matches_a_hand_computed_value():
    # pair 1: a won (p = 1) by r_a − r_b = 2.0 − 1.5 = 0.5, judged "slight" (m = 1/3):
    #   −log σ(0.5 − 1/3) = ln(1 + e^(−1/6)) = ln(1 + 0.846482) = 0.613282
    # pair 2: b won (p = 0) by r_b − r_a = 1.0 − 0.0 = 1.0, judged "strong" (m = 1):
    #   −log σ(r_b − r_a − m) = −log σ(0) = ln 2 = 0.693147
    # pair 3: a tie (p = ½) at r_a − r_b = 0.5; a tie has no margin whatever its m:
    #   −½ log σ(0.5) − ½ log σ(−0.5) = 0.724077
    # mean: (0.613282 + 0.693147 + 0.724077) / 3 = 0.676835
    returns_a = torch.tensor([2.0, 0.0, 0.5])
    returns_b = torch.tensor([1.5, 1.0, 0.0])
    p_a = torch.tensor([1.0, 0.0, 0.5])
    margin = signed_margins(p_a, torch.tensor([1 / 3, 1.0, 1.0]))
    assert margin.tolist() == pytest.approx([1 / 3, -1.0, 0.0])
    loss = bradley_terry_loss(returns_a, returns_b, p_a, margin)
    assert loss.item() == pytest.approx(0.676835, abs=1e-6)
    assert bradley_terry_loss(returns_a[:1], returns_b[:1], p_a[:1], margin[:1]).item() == (
        pytest.approx(0.613282, abs=1e-6)
    )
    # without the margin the first pair is already further from the loss's pull:
    # ln(1 + e^(−0.5)) = 0.474077
    assert bradley_terry_loss(returns_a[:1], returns_b[:1], p_a[:1]).item() == pytest.approx(
        0.474077, abs=1e-6
    )
    assert math.isclose(
        bradley_terry_loss(returns_a, returns_b, p_a, torch.zeros(3)).item(),
        bradley_terry_loss(returns_a, returns_b, p_a).item(),
    )


def test_a_margin_moves_the_loss_minimum_to_a_gap_of_m():
    # d/dΔ of −log σ(Δ − m) is −σ(m − Δ): still pulling at Δ = m/2, half as hard at Δ = m
    gap = torch.tensor([0.5], requires_grad=True)
    bradley_terry_loss(gap, torch.zeros(1), torch.ones(1), torch.tensor([1.0])).backward()
    assert gap.grad.item() == pytest.approx(-1 / (1 + math.exp(-0.5)), abs=1e-6)
