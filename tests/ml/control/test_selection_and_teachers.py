"""Choosing pairs to show (random, ensemble disagreement) and synthetic teachers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.ml.bradley_terry import PREFERENCE_TARGET
from training.ml.control.reward_models import fit_reward_ensemble, reward_ensemble_for_env
from training.ml.control.rollouts import Segment, collect_segments
from training.ml.control.selection import disagreement_pairs, pair_disagreement, random_pairs
from training.ml.teachers import SyntheticTeacher, make_teacher


def segment_with(rewards) -> Segment:
    rewards = np.asarray(rewards, dtype=np.float32)
    return Segment(
        observations=np.zeros((len(rewards), 1), np.float32),
        actions=np.zeros(len(rewards), np.int64),
        true_rewards=rewards,
    )


# --- pair selection ---


@pytest.mark.parametrize(("n_segments", "n_pairs"), [(5, 10), (6, 3), (200, 50)])
def test_random_pairs_are_distinct_pairs_of_two_different_segments(n_segments, n_pairs):
    pairs = random_pairs(n_segments, n_pairs, np.random.default_rng(0))
    assert len(pairs) == n_pairs
    assert all(i != j and 0 <= i < n_segments and 0 <= j < n_segments for i, j in pairs)
    assert len({frozenset(pair) for pair in pairs}) == n_pairs


def test_random_pairs_refuses_more_pairs_than_exist():
    with pytest.raises(ValueError, match="only 6 distinct pairs"):
        random_pairs(4, 7, np.random.default_rng(0))


def test_disagreement_pairs_have_higher_ensemble_variance_than_random_pairs():
    segments = collect_segments(
        env_id="Pendulum-v1", policy=None, n_segments=80, segment_length=10, seed=2
    )
    rng = np.random.default_rng(2)
    teacher = make_teacher("rational")
    pairs = [
        (segments[i], segments[j], PREFERENCE_TARGET[teacher.judge(segments[i], segments[j], rng)])
        for i, j in random_pairs(40, 60, rng)  # only a little data: the members disagree
    ]
    ensemble = reward_ensemble_for_env("Pendulum-v1", seed=2)
    fit_reward_ensemble(ensemble=ensemble, pairs=pairs, epochs=10, lr=3e-3, seed=2)

    chosen = disagreement_pairs(
        ensemble=ensemble, segments=segments, n_pairs=20, oversample=10, rng=rng
    )
    assert len(chosen) == 20 and len({frozenset(p) for p in chosen}) == 20
    chosen_variance = pair_disagreement(ensemble=ensemble, segments=segments, pairs=chosen)
    assert np.all(np.diff(chosen_variance) <= 1e-12)  # most disputed first
    random_variance = pair_disagreement(
        ensemble=ensemble, segments=segments, pairs=random_pairs(80, 200, rng)
    )
    assert chosen_variance.mean() > 2 * random_variance.mean()


# --- teachers ---


def test_rational_teacher_with_infinite_beta_always_picks_the_higher_return():
    rng = np.random.default_rng(0)
    teacher = make_teacher("rational")
    assert teacher.beta == math.inf
    for _ in range(200):
        a, b = rng.normal(size=5), rng.normal(size=5)
        expected = "left" if a.sum() > b.sum() else "right"
        assert teacher.judge(segment_with(a), segment_with(b), rng) == expected
    assert teacher.judge(segment_with([1.0]), segment_with([1.0]), rng) == "tie"


def test_rational_teacher_with_finite_beta_follows_bradley_terry():
    rng = np.random.default_rng(1)
    teacher = make_teacher("rational", beta=0.5)
    a, b = segment_with([1.0, 1.0]), segment_with([0.5, 0.5])  # returns 2 and 1
    trials = 4000
    left = sum(teacher.judge(a, b, rng) == "left" for _ in range(trials))
    expected = 1 / (1 + math.exp(-0.5 * (2 - 1)))  # σ(β (R_a − R_b)) ≈ 0.622
    assert left / trials == pytest.approx(expected, abs=0.03)


def test_mistake_teacher_flips_at_rate_epsilon():
    rng = np.random.default_rng(2)
    teacher = make_teacher("mistake", epsilon=0.2)
    better, worse = segment_with([5.0]), segment_with([1.0])
    trials = 5000
    wrong = sum(teacher.judge(better, worse, rng) == "right" for _ in range(trials))
    assert wrong / trials == pytest.approx(0.2, abs=0.02)
    assert make_teacher("mistake").epsilon == 0.1  # B-Pref's default


def test_equal_teacher_ties_close_returns_only():
    rng = np.random.default_rng(3)
    teacher = make_teacher("equal", equal_threshold=1.0)
    assert teacher.judge(segment_with([3.0]), segment_with([3.5]), rng) == "tie"
    assert teacher.judge(segment_with([3.0]), segment_with([2.1]), rng) == "tie"
    assert teacher.judge(segment_with([3.0]), segment_with([5.0]), rng) == "right"


def test_skip_teacher_skips_when_both_returns_are_below_the_threshold():
    rng = np.random.default_rng(4)
    teacher = make_teacher("skip", skip_threshold=0.0)
    assert teacher.judge(segment_with([-1.0]), segment_with([-2.0]), rng) == "skip"
    assert teacher.judge(segment_with([-1.0]), segment_with([0.5]), rng) == "right"
    assert teacher.rank([segment_with([-1.0]), segment_with([-3.0])], rng) is None


def test_myopic_teacher_weighs_the_end_of_the_segment_most():
    rng = np.random.default_rng(5)
    early = segment_with([1.0, 0.0, 0.0, 0.0])  # return 1.0, earned first
    late = segment_with([0.0, 0.0, 0.0, 0.9])  # return 0.9, earned last
    assert make_teacher("rational").judge(early, late, rng) == "left"
    myopic = make_teacher("myopic")
    assert myopic.gamma == 0.9
    assert myopic.score(early) == pytest.approx(0.9**3)
    assert myopic.judge(early, late, rng) == "right"


def test_rank_sorts_by_return_and_its_noise_follows_the_teacher():
    rng = np.random.default_rng(6)
    items = [segment_with([r]) for r in (0.5, 3.0, -1.0, 2.0)]
    assert make_teacher("rational").rank(items, rng) == [1, 3, 0, 2]
    noisy = make_teacher("rational", beta=1.0)
    firsts = [noisy.rank(items, rng)[0] for _ in range(2000)]
    # Plackett-Luce: P[first = i] = e^{β R_i} / Σ_j e^{β R_j}
    expected = math.exp(3.0) / sum(math.exp(r) for r in (0.5, 3.0, -1.0, 2.0))
    assert firsts.count(1) / len(firsts) == pytest.approx(expected, abs=0.03)
    mistaken = make_teacher("mistake", epsilon=0.5)
    rankings = {tuple(mistaken.rank(items, rng)) for _ in range(50)}
    assert len(rankings) > 1


def test_make_teacher_explains_bad_names_and_parameters():
    with pytest.raises(ValueError, match="choose one of rational, myopic, mistake, equal, skip"):
        make_teacher("oracle")
    with pytest.raises(ValueError, match="equal_threshold"):
        make_teacher("equal")
    with pytest.raises(ValueError, match="Unknown teacher parameter"):
        make_teacher("rational", temperature=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        SyntheticTeacher(epsilon=1.5)
