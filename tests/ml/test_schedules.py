"""The label schedule: a quarter of the budget from the initial policy, the rest decaying."""

import pytest

from training.ml.schedules import comparisons_by_round


def test_front_loaded_gives_the_first_round_its_share_then_a_decaying_rest_summing_to_budget():
    counts = comparisons_by_round(
        budget=200, rounds=10, initial_fraction=0.25, schedule="front_loaded"
    )
    assert len(counts) == 11 and sum(counts) == 200
    assert counts[0] == 50
    rest = counts[1:]
    assert rest == sorted(rest, reverse=True) and rest[0] > rest[-1]
    # 1 / (1 + t) from t = 0 to 1: the last of the rounds gets about half the first's share
    assert rest[-1] == pytest.approx(rest[0] / 2, abs=1)


@pytest.mark.parametrize("budget", [0, 1, 7, 50, 101])
def test_uniform_spreads_the_rest_evenly_and_every_budget_is_spent_exactly(budget):
    counts = comparisons_by_round(
        budget=budget, rounds=4, initial_fraction=0.25, schedule="uniform"
    )
    assert sum(counts) == budget
    assert max(counts[1:]) - min(counts[1:]) <= 1


def test_a_bad_schedule_is_refused():
    with pytest.raises(ValueError, match="rounds 0"):
        comparisons_by_round(budget=10, rounds=0, initial_fraction=0.25, schedule="uniform")
