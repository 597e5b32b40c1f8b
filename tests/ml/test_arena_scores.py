"""The arena's leaderboard math: Davidson's tie model by hand, maximum likelihood on known
strengths, and the bootstrap intervals (training/ml/arena_scores.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.ml.arena_scores import (
    LOSS,
    TIE,
    WIN,
    davidson_log_likelihood,
    fit_arena_scores,
    outcome_codes,
)


def _simulate(strengths: np.ndarray, nu: float, n: int, seed: int):
    """n outcomes of Davidson's model between random distinct pairs."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    first = rng.integers(0, k, n)
    second = (first + rng.integers(1, k, n)) % k
    d = strengths[first] - strengths[second]
    z = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(n)
    outcome = np.where(
        u < np.exp(d / 2) / z, WIN, np.where(u < (np.exp(d / 2) + np.exp(-d / 2)) / z, LOSS, TIE)
    )
    return first, second, outcome


def test_the_log_likelihood_of_two_players_matches_davidsons_formula_by_hand():
    # π = (e^{0.4}, e^{-0.4}), ν = 0.5: one win of 0, one loss of 0, one tie.
    pi_0, pi_1, nu = math.exp(0.4), math.exp(-0.4), 0.5
    denominator = pi_0 + pi_1 + nu * math.sqrt(pi_0 * pi_1)
    expected = (
        math.log(pi_0 / denominator)
        + math.log(pi_1 / denominator)
        + math.log(nu * math.sqrt(pi_0 * pi_1) / denominator)
    )
    found = davidson_log_likelihood(
        np.array([0.4, -0.4]),
        math.log(nu),
        first=np.array([0, 0, 1]),
        second=np.array([1, 1, 0]),
        outcome=np.array([WIN, LOSS, TIE]),
    )
    assert found == pytest.approx(expected, rel=1e-12)


def test_two_players_fit_the_closed_form_maximum_likelihood():
    # Two players' Davidson model is saturated: P(win), P(loss), P(tie) are the observed
    # shares, so d = log(w / l) and ν = t / √(w l). Player 0 wins 6, loses 3, ties 3, some
    # of them recorded from player 1's side.
    rows = [(0, 1, WIN)] * 4 + [(1, 0, LOSS)] * 2  # 6 wins of 0
    rows += [(0, 1, LOSS)] * 2 + [(1, 0, WIN)]  # 3 losses of 0
    rows += [(0, 1, TIE)] * 2 + [(1, 0, TIE)]  # 3 ties
    first, second, outcome = (np.array(column) for column in zip(*rows, strict=True))
    fit = fit_arena_scores(
        n_versions=2, first=first, second=second, outcome=outcome, ridge=0.0, n_bootstrap=50
    )
    assert (fit.wins.tolist(), fit.losses.tolist(), fit.ties.tolist()) == ([6, 3], [3, 6], [3, 3])
    assert fit.scores.tolist() == pytest.approx([math.log(2) / 2, -math.log(2) / 2], abs=1e-8)
    assert fit.tie_strength == pytest.approx(3 / math.sqrt(6 * 3), rel=1e-6)


def test_the_fit_recovers_known_strengths_and_tie_parameter():
    strengths = np.array([-1.0, 0.0, 1.0, 0.5])
    strengths -= strengths.mean()
    first, second, outcome = _simulate(strengths, nu=0.5, n=4000, seed=0)
    fit = fit_arena_scores(n_versions=4, first=first, second=second, outcome=outcome)
    assert fit.scores == pytest.approx(strengths, abs=0.1)
    assert fit.tie_strength == pytest.approx(0.5, abs=0.05)
    assert np.argsort(fit.scores).tolist() == [0, 1, 3, 2]
    # each 95% interval holds its estimate, and is narrow with 4000 outcomes
    assert (fit.ci_low <= fit.scores).all() and (fit.scores <= fit.ci_high).all()
    assert (fit.ci_high - fit.ci_low < 0.3).all()


def test_the_intervals_of_a_difference_cover_the_truth_about_95_percent_of_the_time():
    truth = 0.6
    covered = 0
    for seed in range(40):
        first, second, outcome = _simulate(np.array([truth / 2, -truth / 2]), 0.4, 150, seed)
        fit = fit_arena_scores(
            n_versions=2, first=first, second=second, outcome=outcome, n_bootstrap=400
        )
        _, low, high = fit.difference(0, 1)
        covered += low <= truth <= high
    assert covered >= 34  # of 40 (36 with these seeds); ≤ 33 has probability 0.3% at 95%


def test_a_clear_difference_has_an_interval_that_excludes_zero_and_a_coin_flip_does_not():
    first, second, outcome = _simulate(np.array([0.75, -0.75]), nu=0.3, n=200, seed=1)
    fit = fit_arena_scores(n_versions=2, first=first, second=second, outcome=outcome)
    difference, low, high = fit.difference(0, 1)
    assert 0 < low <= difference <= high
    assert fit.share_of_resamples_better(0, 1) == 1.0

    first, second, outcome = _simulate(np.array([0.0, 0.0]), nu=0.3, n=200, seed=2)
    fit = fit_arena_scores(n_versions=2, first=first, second=second, outcome=outcome)
    _, low, high = fit.difference(0, 1)
    assert low < 0 < high


def test_ties_pull_scores_together_and_all_ties_mean_equal_scores():
    ties_only = fit_arena_scores(
        n_versions=2,
        first=np.zeros(10, dtype=int),
        second=np.ones(10, dtype=int),
        outcome=np.full(10, TIE),
    )
    assert ties_only.scores == pytest.approx([0.0, 0.0], abs=1e-9)
    assert ties_only.tie_strength > 10  # nothing but ties: ν large
    # 6 wins and 2 losses, with and without 8 ties besides
    base = [WIN] * 6 + [LOSS] * 2
    without = fit_arena_scores(
        n_versions=2, first=np.zeros(8, int), second=np.ones(8, int), outcome=np.array(base)
    )
    with_ties = fit_arena_scores(
        n_versions=2,
        first=np.zeros(16, int),
        second=np.ones(16, int),
        outcome=np.array(base + [TIE] * 8),
    )
    assert with_ties.ties.tolist() == [8, 8]
    # Davidson's d = log(w / l) either way: ties inform ν, not the order
    assert with_ties.difference(0, 1)[0] == pytest.approx(without.difference(0, 1)[0], abs=0.02)


def test_a_version_that_won_everything_has_a_finite_score_and_an_interval_above_zero():
    fit = fit_arena_scores(
        n_versions=3,
        first=np.array([0] * 20 + [1] * 20),
        second=np.array([1] * 20 + [2] * 20),
        outcome=np.array([WIN] * 40),
    )
    assert np.isfinite(fit.scores).all() and fit.scores[0] > fit.scores[1] > fit.scores[2]
    assert fit.difference(0, 2)[1] > 0


def test_grouped_bootstrap_resamples_comparisons_and_is_reproducible():
    first, second, outcome = _simulate(np.array([0.5, -0.5]), nu=0.3, n=120, seed=3)
    groups = np.arange(120) // 3  # three annotators per comparison
    one = fit_arena_scores(n_versions=2, first=first, second=second, outcome=outcome, groups=groups)
    two = fit_arena_scores(n_versions=2, first=first, second=second, outcome=outcome, groups=groups)
    assert one.ci_low.tolist() == two.ci_low.tolist()
    assert one.bootstrap.shape == (1000, 2)


def test_no_outcomes_give_zero_scores_without_intervals():
    fit = fit_arena_scores(
        n_versions=3, first=np.array([]), second=np.array([]), outcome=np.array([])
    )
    assert fit.scores.tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(fit.ci_low).all() and math.isnan(fit.difference(0, 1)[1])


def test_outcome_codes_read_preferences_as_wins_losses_and_ties():
    assert outcome_codes(np.array([1.0, 0.0, 0.5])).tolist() == [WIN, LOSS, TIE]


def test_bad_input_is_refused_naming_it():
    with pytest.raises(ValueError, match="itself"):
        fit_arena_scores(n_versions=2, first=[0], second=[0], outcome=[WIN])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        fit_arena_scores(n_versions=2, first=[0], second=[2], outcome=[WIN])
