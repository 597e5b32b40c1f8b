"""The label forecast: an inverse power law recovered from its own points, the labels it
needs for a target, and an interval around them."""

from __future__ import annotations

import numpy as np
import pytest

from training.ml.forecast import PowerLaw, fit_power_law, forecast_labels


def test_a_curve_is_recovered_from_its_own_points():
    truth = PowerLaw(floor=0.05, scale=2.0, exponent=0.5)
    n = np.array([20, 40, 80, 160, 320, 640])

    fitted = fit_power_law(n, truth(n))

    assert fitted.floor == pytest.approx(0.05, abs=0.01)
    assert fitted.exponent == pytest.approx(0.5, abs=0.05)
    assert fitted(1000) == pytest.approx(truth(1000), rel=0.02)


def test_labels_for_a_target_solve_the_curve():
    curve = PowerLaw(floor=0.1, scale=4.0, exponent=0.5)
    # 0.1 + 4 / sqrt(n) = 0.2  ⇔  sqrt(n) = 40  ⇔  n = 1600
    assert curve.labels_for(0.2) == pytest.approx(1600)
    assert curve.labels_for(0.1) == float("inf")  # the floor itself is never reached
    assert curve.labels_for(0.05) == float("inf")


def test_a_forecast_from_noisy_points_brackets_the_truth():
    truth = PowerLaw(floor=0.08, scale=1.5, exponent=0.6)
    n = np.array([20, 40, 60, 80, 100, 140, 180, 220])
    rng = np.random.default_rng(3)
    y = truth(n) + rng.normal(0, 0.005, size=len(n))

    forecast = forecast_labels(n, y, target=0.15, seed=0)

    needed = truth.labels_for(0.15)  # about 422 labels
    assert forecast.ci_low <= needed <= forecast.ci_high
    assert forecast.ci_low <= forecast.labels <= forecast.ci_high
    assert forecast.labels == pytest.approx(needed, rel=0.35)
    assert forecast_labels(n, y, target=0.15, seed=0) == forecast  # fixed seed


def test_a_target_below_the_noise_floor_is_not_reached():
    truth = PowerLaw(floor=0.2, scale=1.0, exponent=0.7)
    n = np.array([50, 100, 200, 400, 800])

    forecast = forecast_labels(n, truth(n), target=0.1)

    assert forecast.labels == float("inf")


def test_a_curve_needs_two_label_counts():
    with pytest.raises(ValueError, match="two or more label counts"):
        fit_power_law(np.array([50, 50]), np.array([0.3, 0.31]))
