"""Inter-annotator agreement: the formulas against worked examples, undefined cases, the
bootstrap, the stats answer's shape, what annotators see, and one computation at a time."""

import json
import threading

import numpy as np
import pytest

from labeling import agreement, services
from labeling import stats as labeling_stats
from labeling.models import Comparison


# --- the formulas, on tables worked out by hand ----------------------------------------------
def test_cohen_kappa_of_a_textbook_two_by_two_table():
    # 50 items; both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # p_o = (20 + 15) / 50 = 0.7; A says yes 25/50, B 30/50:
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; κ = (0.7 - 0.5) / (1 - 0.5) = 0.4
    assert agreement.cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)


def test_fleiss_kappa_of_the_fourteen_raters_example():
    # The usual worked example of Fleiss' κ: 10 subjects, 14 raters, 5 categories.
    table = np.array(
        [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
         [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    )  # fmt: skip
    # Σ_j n_ij² per subject: 196, 60, 70, 94, 74, 98, 58, 46, 66, 66 (sum 828), so
    # P̄ = (828 - 10·14) / (10 · 14 · 13) = 688 / 1820 = 0.378022.
    # Category totals 20, 28, 39, 21, 32 of 140: P̄_e = 4170 / 19600 = 0.212755.
    # κ = (0.378022 - 0.212755) / (1 - 0.212755) = 0.209931
    assert agreement.fleiss_kappa(table, np.ones(10)) == pytest.approx(0.209931, abs=1e-6)


# Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1..5, blanks missing.
KRIPPENDORFF_DATA = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _value_counts(data, values):
    """Units × values: how many observers gave each value to each unit."""
    return np.array(
        [[column.count(v) for v in values] for column in map(list, zip(*data, strict=True))]
    )


def test_krippendorff_alpha_of_krippendorffs_own_example():
    counts = _value_counts(KRIPPENDORFF_DATA, [1, 2, 3, 4, 5])
    o = agreement.coincidences(counts).sum(axis=0)
    # Coincidences (unit 12 has one value and pairs nothing):
    #       1     2     3     4   5     n_c
    #   1   7    4/3   1/3   1/3  0      9
    #   2  4/3   10    4/3   1/3  0     13
    #   3  1/3   4/3    8    1/3  0     10
    #   4  1/3   1/3   1/3    4   0      5
    #   5   0     0     0     0   3      3      n = 40
    expected = np.array(
        [[21, 4, 1, 1, 0], [4, 30, 4, 1, 0], [1, 4, 24, 1, 0], [1, 1, 1, 12, 0], [0, 0, 0, 0, 9]]
    ) / 3  # fmt: skip
    np.testing.assert_allclose(o, expected)
    # nominal: α = 1 - (n - 1)(n - Σ o_cc) / (n² - Σ n_c²) = 1 - 39 · 8 / (1600 - 384)
    #          = 1 - 312 / 1216 = 0.743421
    assert agreement.krippendorff_alpha(o, "nominal") == pytest.approx(0.743421, abs=1e-6)
    # ordinal: δ²_ck = (n_c + ... + n_k - (n_c + n_k) / 2)²: δ²_12 = 11² = 121,
    # δ²_13 = 22.5², δ²_14 = 30², δ²_23 = 11.5², δ²_24 = 19², δ²_34 = 7.5², ...;
    # Σ_{c<k} o_ck δ²_ck = 945.5 and Σ_{c<k} n_c n_k δ²_ck = 199740, so
    # α = 1 - 39 · 945.5 / 199740 = 0.815387 (the paper: 0.815)
    assert agreement.krippendorff_alpha(o, "ordinal") == pytest.approx(0.815387, abs=1e-6)


def test_statistics_are_undefined_for_a_single_category_or_nothing_to_compare():
    assert np.isnan(agreement.cohen_kappa(np.array([[5, 0], [0, 0]])))  # p_e = 1
    assert np.isnan(agreement.cohen_kappa(np.zeros((2, 2))))
    assert np.isnan(agreement.fleiss_kappa(np.array([[3, 0], [2, 0]]), np.ones(2)))
    assert np.isnan(agreement.fleiss_kappa(np.zeros((0, 2)), np.zeros(0)))
    one_value = agreement.coincidences(np.array([[3, 0], [2, 0]])).sum(axis=0)
    assert np.isnan(agreement.krippendorff_alpha(one_value, "nominal"))
    assert np.isnan(agreement.krippendorff_alpha(one_value, "ordinal"))


def _random_answers(seed: int, *, units=120, raters=5):
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(units):
        truth = rng.integers(1, 3)
        for rater in rng.choice(raters, size=rng.integers(2, 4), replace=False):
            rows.append((unit, rater, truth if rng.random() < 0.75 else rng.integers(0, 3)))
    unit, rater, category = np.array(rows).T
    places = np.array([[1.5, 1.5], [1, 2], [2, 1]])[category]
    return agreement.Answers(unit=unit, rater=rater, category=category, places=places)


def test_bootstrap_intervals_hold_the_estimate_and_repeat_exactly():
    answers = _random_answers(3)
    names = [f"r{i}" for i in range(5)]
    first, pooled = agreement.project_agreement(answers, names)
    again, _ = agreement.project_agreement(answers, names)
    assert first == again  # fixed seed: the same answers give the same intervals
    for name in ("fleiss_kappa", "krippendorff_alpha"):
        low, high = first[f"{name}_ci"]
        assert low < first[name] < high
    assert len(first["cohen_kappa"]) == 10  # every pair of 5 shares comparisons here
    for figures in first["cohen_kappa"].values():
        low, high = figures["ci"]
        assert low <= figures["kappa"] <= high and figures["n"] > 0
    assert all(row["n"] > 0 for row in pooled)
    assert first["pair_resamples"] == first["resamples"] == 1000
    other_seed, _ = agreement.project_agreement(answers, names, seed=1)
    assert other_seed["fleiss_kappa"] == first["fleiss_kappa"]
    assert other_seed["fleiss_kappa_ci"] != first["fleiss_kappa_ci"]


def test_many_pairs_share_a_budget_of_resamples_and_past_it_get_no_interval(monkeypatch):
    answers, names = _random_answers(4), [f"r{i}" for i in range(5)]
    monkeypatch.setattr(agreement, "PAIR_DRAWS", 10 * 150)  # 10 pairs: 150 resamples each
    found, _ = agreement.project_agreement(answers, names)
    assert found["pair_resamples"] == 150 and found["resamples"] == 1000
    assert all(figures["ci"] is not None for figures in found["cohen_kappa"].values())
    monkeypatch.setattr(agreement, "PAIR_DRAWS", 10 * 99)  # below PAIR_RESAMPLES_FLOOR
    found, _ = agreement.project_agreement(answers, names)
    assert found["pair_resamples"] == 0
    assert all(figures["ci"] is None for figures in found["cohen_kappa"].values())
    assert found["fleiss_kappa_ci"] is not None  # the project's intervals keep theirs


# --- in a project ------------------------------------------------------------------------
def _answer(user, comparison, *, places=None, choice=None):
    """Judge ``comparison`` as ``user``: ``places`` gives each item's place (1 best) in
    increasing id order, or ``choice`` is "first", "second", "tie" or "skip" by item id."""
    lease = services.assign_next_comparison(annotator=user, project=comparison.project)
    assert lease.comparison_id == comparison.pk
    ids = sorted(lease.display_order)
    if choice in ("tie", "skip"):
        services.record_judgement(annotator=user, comparison=comparison, choice=choice)
        return
    if choice is not None:
        places = [1, 2] if choice == "first" else [2, 1]
    ranking = [item for _, item in sorted(zip(places, ids, strict=True))]
    services.record_judgement(annotator=user, comparison=comparison, ranking=ranking)


def test_a_pairs_project_by_hand(make_user, make_project, make_comparison):
    alice, bob = make_user("alice"), make_user("bob")
    project = make_project(members=[alice, bob], overlap=2)
    said = [  # (alice, bob) by item id: the first item, the second, or a tie
        ("first", "first"), ("first", "first"), ("second", "second"),
        ("first", "second"), ("tie", "tie"), ("second", "first"),
        ("skip", "first"),  # one answer left: it pairs with nothing
    ]  # fmt: skip
    comparisons = [make_comparison(project) for _ in said]
    for comparison, (by_alice, by_bob) in zip(comparisons, said, strict=True):
        _answer(alice, comparison, choice=by_alice)
        _answer(bob, comparison, choice=by_bob)
    found = labeling_stats.project_stats(project, for_user=make_user(staff=True))["agreement"]
    # Categories (tie, first, second); alice in rows, bob in columns:
    #   [[1, 0, 0], [0, 2, 1], [0, 1, 1]]  n = 6, p_o = 4/6
    # both say (tie, first, second) 1, 3, 2 times: p_e = (1 + 9 + 4) / 36 = 14/36
    # Cohen's κ = (24/36 - 14/36) / (22/36) = 10/22
    assert found["cohen_kappa"]["alice|bob"]["kappa"] == pytest.approx(10 / 22)
    assert found["cohen_kappa"]["alice|bob"]["n"] == 6
    # Fleiss: P_i = 1 on the 4 agreeing comparisons, 0 on 2: P̄ = 4/6; totals 2, 6, 4 of 12:
    # P̄_e = (4 + 36 + 16) / 144; κ = (4/6 - 56/144) / (1 - 56/144) = 10/22 as well
    assert found["fleiss_kappa"] == pytest.approx(10 / 22)
    # α (nominal): o_tie,tie = 2, o_11 = 4, o_22 = 2, o_12 = o_21 = 2; n_c = 2, 6, 4; n = 12:
    # α = 1 - 11 · (12 - 8) / (144 - 56) = 1 - 44/88 = 0.5
    assert found["krippendorff_alpha"] == pytest.approx(0.5)
    assert found["alpha_level"] == "nominal"
    assert (found["comparisons"], found["answers"]) == (6, 12)


def test_a_ranking_project_uses_ordinal_alpha(make_user, make_project, make_comparison):
    alice, bob = make_user("alice"), make_user("bob")
    project = make_project(members=[alice, bob], overlap=2)
    first, second = make_comparison(project, k=3), make_comparison(project, k=3)
    _answer(alice, first, places=[1, 2, 3])
    _answer(bob, first, places=[1, 2, 3])
    _answer(alice, second, places=[1, 2, 3])
    _answer(bob, second, places=[2, 1, 3])
    found = labeling_stats.project_stats(project, for_user=make_user(staff=True))["agreement"]
    # Units (comparison, item): {1,1} {2,2} {3,3} {1,2} {2,1} {3,3}; o_11 = o_22 = 2,
    # o_33 = 4, o_12 = o_21 = 2; n_c = 4, 4, 4, n = 12. Ordinal δ²_12 = (8 - 4)² = 16,
    # δ²_13 = (12 - 4)² = 64, δ²_23 = 16. Observed Σ o δ² = 2·16 + 2·16 = 64; expected
    # Σ n_c n_k δ² = 2 (16·16 + 16·64 + 16·16) = 3072; α = 1 - 11 · 64 / 3072 = 0.770833
    assert found["alpha_level"] == "ordinal"
    assert found["krippendorff_alpha"] == pytest.approx(1 - 11 * 64 / 3072)
    # Top items (nominal): alice first, first; bob first, second. Fleiss: P̄ = 1/2,
    # P̄_e = (3/4)² + (1/4)² = 5/8, κ = (1/2 - 5/8) / (3/8) = -1/3. Cohen: p_o = 1/2,
    # p_e = 1 · 1/2 = 1/2, κ = 0.
    assert found["fleiss_kappa"] == pytest.approx(-1 / 3)
    assert found["cohen_kappa"]["alice|bob"]["kappa"] == pytest.approx(0.0)


def test_gold_skips_and_lone_annotators_give_nulls(make_user, make_project, make_comparison):
    alice, bob = make_user("alice"), make_user("bob")
    project = make_project(members=[alice, bob], overlap=2, gold_rate=1.0)
    gold = make_comparison(project)
    Comparison.objects.filter(pk=gold.pk).update(gold_ranking=[gold.slots.get(position=0).item_id])
    _answer(alice, gold, choice="first")
    _answer(bob, gold, choice="first")  # agreeing on gold counts for nothing
    staff = make_user(staff=True)
    found = labeling_stats.project_stats(project, for_user=staff)["agreement"]
    assert found["comparisons"] == 0 and found["cohen_kappa"] == {}
    for name in ("fleiss_kappa", "krippendorff_alpha"):
        assert found[name] is None and found[f"{name}_ci"] is None
    project.gold_rate = 0.0
    project.save()
    plain = make_comparison(project)
    _answer(alice, plain, choice="first")
    _answer(bob, plain, choice="first")  # one category: chance agreement is 1
    stats = labeling_stats.project_stats(project, for_user=staff)
    found = stats["agreement"]
    assert found["comparisons"] == 1 and found["fleiss_kappa"] is None
    assert found["krippendorff_alpha"] is None
    assert found["cohen_kappa"]["alice|bob"] == {"kappa": None, "n": 1, "ci": None}
    assert "NaN" not in json.dumps(stats)


def _judged_project(make_user, make_project, make_comparison):
    users = [make_user(name) for name in ("ann", "bert", "cleo")]
    project = make_project(members=users, overlap=3)
    rng = np.random.default_rng(0)
    for _ in range(12):
        comparison = make_comparison(project)
        for user in users:
            _answer(user, comparison, choice=["first", "second", "tie"][rng.integers(0, 3)])
    return project, users


def test_the_stats_answer_carries_agreement(
    make_user, make_project, make_comparison, api_client_for
):
    project, _ = _judged_project(make_user, make_project, make_comparison)
    response = api_client_for(make_user(staff=True)).get(f"/api/projects/{project.slug}/stats/")
    assert response.status_code == 200
    found = json.loads(response.content)["agreement"]
    assert set(found) == {
        "comparisons", "answers", "fleiss_kappa", "fleiss_kappa_ci", "krippendorff_alpha",
        "krippendorff_alpha_ci", "alpha_level", "cohen_kappa", "confidence", "resamples",
        "pair_resamples",
    }  # fmt: skip
    assert set(found["cohen_kappa"]) == {"ann|bert", "ann|cleo", "bert|cleo"}
    for figures in found["cohen_kappa"].values():
        assert set(figures) == {"kappa", "n", "ci"} and figures["n"] == 12
    assert found["comparisons"] == 12 and found["answers"] == 36
    assert isinstance(found["fleiss_kappa"], float) and len(found["krippendorff_alpha_ci"]) == 2
    rows = json.loads(response.content)["annotators"]
    assert all(row["cohen_kappa_with_others"]["n"] == 24 for row in rows)


def test_annotators_see_project_agreement_but_no_one_elses_figures(
    make_user, make_project, make_comparison, api_client_for
):
    project, (ann, *_) = _judged_project(make_user, make_project, make_comparison)
    staff_view = labeling_stats.project_stats(project, for_user=make_user(staff=True))
    response = api_client_for(ann).get(f"/api/projects/{project.slug}/stats/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "bert" not in text and "cleo" not in text
    seen = json.loads(text)
    assert seen["agreement"]["cohen_kappa"] is None
    assert seen["agreement"]["fleiss_kappa"] == staff_view["agreement"]["fleiss_kappa"]
    (own,) = seen["annotators"]
    assert own["cohen_kappa_with_others"] == staff_view["annotators"][0]["cohen_kappa_with_others"]


def test_a_statistics_statement_past_its_time_limit_is_a_503(
    make_user, make_project, api_client_for, monkeypatch
):
    project = make_project()
    monkeypatch.setattr(labeling_stats, "STATEMENT_TIMEOUT_S", 0.05)
    monkeypatch.setattr(labeling_stats, "_stats_sql", lambda: "SELECT pg_sleep(1)")
    response = api_client_for(make_user(staff=True)).get(f"/api/projects/{project.slug}/stats/")
    assert response.status_code == 503
    assert "longer than 0.05 s" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_cold_calls_compute_once(make_user, make_project, make_comparison, monkeypatch):
    from django.db import connection

    project, _ = _judged_project(make_user, make_project, make_comparison)
    staff = make_user(staff=True)
    computed = []
    real_compute = labeling_stats._compute

    def slow_compute(project):
        computed.append(project.pk)
        threading.Event().wait(0.5)  # long enough for every caller to arrive
        return real_compute(project)

    monkeypatch.setattr(labeling_stats, "_compute", slow_compute)
    answers = []

    def call():
        try:
            answers.append(labeling_stats.project_stats(project, for_user=staff))
        finally:
            connection.close()

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert computed == [project.pk]
    assert len(answers) == 4 and all(answer == answers[0] for answer in answers)


def test_the_dashboard_shows_the_projects_agreement(
    make_user, make_project, make_comparison, client
):
    project, _ = _judged_project(make_user, make_project, make_comparison)
    client.force_login(make_user(staff=True))
    response = client.get(f"/projects/{project.slug}/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Fleiss' κ" in page and "Krippendorff's α (nominal)" in page
    assert "ann · bert" in page and "ann · cleo" in page and "bert · cleo" in page
