"""preferences(): every kind's training data and the TRL export, decoded from judgements in
one place. Judgements are made through the services people use; no worker, no training."""

from __future__ import annotations

import pytest

from labeling import exports, preferences, services
from labeling.models import Item
from labeling.preferences import P_BETTER, P_TIE, Preference


@pytest.fixture
def judge(make_user, make_project, make_comparison):
    """judge(answers, k=2, gold=None) → (project, comparison, judgements): one comparison
    judged by one annotator per answer, each answer {choice} or a function of the order the
    annotator saw the items in (→ {ranking})."""

    def make(answers, *, k=2, gold=None):
        users = [make_user() for _ in answers]
        project = make_project(members=users, overlap=len(answers))
        comparison = make_comparison(project, k=k, gold=gold)
        judgements = []
        for user, answer in zip(users, answers, strict=True):
            lease = services.assign_next_comparison(annotator=user, project=project)
            assert lease.comparison_id == comparison.pk
            given = answer(lease.display_order) if callable(answer) else answer
            result = services.record_judgement(annotator=user, comparison=comparison.pk, **given)
            judgements.append(result.judgement)
        return project, comparison, judgements

    return make


@pytest.mark.django_db
@pytest.mark.parametrize("choice", ["left", "right"])
def test_a_choice_is_one_pair_with_the_winner_first(judge, choice):
    project, _, (judgement,) = judge([{"choice": choice}])
    left, right = judgement.shown_order
    winner, loser = (left, right) if choice == "left" else (right, left)
    assert preferences.preferences(project) == [
        Preference(winner, loser, P_BETTER, judgement.annotator_id, judgement.pk)
    ]


@pytest.mark.django_db
def test_a_tie_is_one_pair_at_one_half_in_the_order_shown_unless_ties_are_left_out(judge):
    project, _, (judgement,) = judge([{"choice": "tie"}])
    a, b = judgement.shown_order
    assert preferences.preferences(project) == [
        Preference(a, b, P_TIE, judgement.annotator_id, judgement.pk)
    ]
    assert P_TIE == 0.5
    assert preferences.preferences(project, ties=False) == []


@pytest.mark.django_db
def test_a_skip_gives_nothing(judge):
    project, _, _ = judge([{"choice": "skip"}])
    assert preferences.preferences(project) == []


@pytest.mark.django_db
def test_a_ranking_of_k_gives_its_k_choose_2_pairs_better_first(judge):
    project, _, (judgement,) = judge([lambda shown: {"ranking": list(reversed(shown))}], k=4)
    best, second, third, worst = judgement.ranking
    pairs = [(p.a_id, p.b_id, p.p) for p in preferences.preferences(project)]
    assert pairs == [
        (best, second, 1.0),
        (best, third, 1.0),
        (best, worst, 1.0),
        (second, third, 1.0),
        (second, worst, 1.0),
        (third, worst, 1.0),
    ]
    assert {p.judgement_id for p in preferences.preferences(project)} == {judgement.pk}


@pytest.mark.django_db
def test_each_annotator_contributes_their_own_pairs_oldest_judgement_first(judge):
    project, _, judgements = judge([{"choice": "left"}, {"choice": "tie"}, {"choice": "skip"}])
    found = preferences.preferences(project)
    assert [p.judgement_id for p in found] == [judgements[0].pk, judgements[1].pk]
    assert [p.annotator_id for p in found] == [j.annotator_id for j in judgements[:2]]
    assert [p.p for p in found] == [P_BETTER, P_TIE]


@pytest.mark.django_db
def test_judgements_of_gold_comparisons_count_and_the_gold_answer_itself_does_not(judge):
    project, gold, (judgement,) = judge([{"choice": "left"}], gold="tie")
    assert gold.is_gold
    (pair,) = preferences.preferences(project)
    assert pair.judgement_id == judgement.pk and pair.p == P_BETTER


@pytest.mark.django_db
def test_pairs_with_a_deleted_item_are_left_out_and_the_rest_of_a_ranking_stays(judge):
    project, _, (judgement,) = judge([lambda shown: {"ranking": list(shown)}], k=3)
    best, middle, worst = judgement.ranking
    Item.objects.filter(pk=middle).delete()
    pairs = [(p.a_id, p.b_id) for p in preferences.preferences(project)]
    assert pairs == [(best, worst)]


@pytest.mark.django_db
def test_comparison_ids_restrict_the_pairs_to_those_comparisons(judge):
    project, first, _ = judge([{"choice": "right"}])
    assert preferences.preferences(project, comparison_ids=[first.pk])
    assert preferences.preferences(project, comparison_ids=[]) == []


@pytest.mark.django_db
def test_the_trl_export_is_the_ranked_preferences_as_text(judge):
    project, _, _ = judge([lambda shown: {"ranking": list(shown)}], k=3)
    texts = dict(Item.objects.filter(project=project).values_list("pk", "text"))
    exported = list(exports.export_trl(project))
    assert [(row["chosen"], row["rejected"]) for row in exported] == [
        (texts[p.a_id], texts[p.b_id]) for p in preferences.preferences(project, ties=False)
    ]
    assert len(exported) == 3
