"""Bandits: ε-greedy and UCB on the 10-armed Gaussian testbed, and UCB choosing pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.ml.tabular.bandits import (
    EpsilonGreedyConfig,
    GaussianBandit,
    UCBConfig,
    UCBPairSelector,
    run_epsilon_greedy,
    run_ucb,
)

RUNS, STEPS = 20, 1_000


@pytest.fixture(scope="module")
def regrets() -> dict[str, np.ndarray]:
    """Per-step regret (RUNS, STEPS) of each learner, on the same 20 testbeds."""
    ucb, greedy = [], []
    for run in range(RUNS):
        bandit = GaussianBandit(10, seed=run)
        ucb.append(run_ucb(bandit=bandit, seed=1_000 + run, config=UCBConfig(steps=STEPS)).regret)
        greedy.append(
            run_epsilon_greedy(
                bandit=bandit, seed=1_000 + run, config=EpsilonGreedyConfig(steps=STEPS)
            ).regret
        )
    return {"ucb": np.array(ucb), "epsilon_greedy": np.array(greedy)}


def test_gaussian_bandit_arms_are_fixed_by_the_seed():
    assert np.array_equal(GaussianBandit(10, seed=3).means, GaussianBandit(10, seed=3).means)
    bandit = GaussianBandit(10, seed=3)
    assert bandit.regret(action=bandit.optimal_action) == 0.0
    assert all(bandit.regret(action=a) >= 0 for a in range(10))


def test_ucb_regret_grows_sublinearly(regrets):
    first_half = regrets["ucb"][:, : STEPS // 2].sum(axis=1).mean()
    second_half = regrets["ucb"][:, STEPS // 2 :].sum(axis=1).mean()
    assert second_half < 0.5 * first_half
    # ε-greedy with a constant ε keeps exploring: its regret grows linearly.
    greedy_first = regrets["epsilon_greedy"][:, : STEPS // 2].sum(axis=1).mean()
    greedy_second = regrets["epsilon_greedy"][:, STEPS // 2 :].sum(axis=1).mean()
    assert greedy_second > 0.5 * greedy_first


def test_ucb_beats_epsilon_greedy_at_a_fixed_horizon(regrets):
    ucb_total = regrets["ucb"].sum(axis=1).mean()
    greedy_total = regrets["epsilon_greedy"].sum(axis=1).mean()
    assert ucb_total < 0.8 * greedy_total


def test_pair_selector_learns_which_kind_of_pair_is_informative():
    # The middle disagreement quantile is the informative one; the most disputed pairs are
    # the ones annotators cannot tell apart.
    informativeness = np.array([0.1, 0.3, 0.8, 0.5, 0.2])
    rng = np.random.default_rng(0)
    selector = UCBPairSelector(n_arms=5, c=0.5)
    chosen_arms = []
    for _ in range(40):
        scores = rng.random(200)
        indices = selector.select(scores, 10, rng)
        arms = selector.arms_of(scores)[indices]
        assert len(set(indices.tolist())) == 10
        selector.update(indices, rng.normal(informativeness[arms], 0.2))
        # The state survives a JSON round trip, as between two Celery tasks.
        selector = UCBPairSelector.from_state(json.loads(json.dumps(selector.to_state())))
        chosen_arms.append(arms)

    assert np.argmax(selector.counts) == 2
    assert np.mean(np.array(chosen_arms[-10:]) == 2) > 0.8
    assert np.all(selector.counts > 0)  # every arm was tried


def test_pair_selector_spreads_a_first_batch_over_untried_arms():
    selector = UCBPairSelector(n_arms=4)
    scores = np.arange(8.0)
    indices = selector.select(scores, 4, np.random.default_rng(0))
    assert sorted(selector.arms_of(scores)[indices].tolist()) == [0, 1, 2, 3]


def test_pair_selector_refuses_indices_it_did_not_choose_and_oversized_batches():
    selector = UCBPairSelector(n_arms=2)
    indices = selector.select(np.arange(4.0), 2, np.random.default_rng(0))
    unchosen = next(i for i in range(4) if i not in indices)
    with pytest.raises(ValueError, match="not chosen"):
        selector.update([unchosen], [1.0])
    with pytest.raises(ValueError, match="n_pairs"):
        selector.select(np.arange(4.0), 5, np.random.default_rng(0))
