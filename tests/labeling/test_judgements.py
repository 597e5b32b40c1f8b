"""record_judgement: screen order to item ids, idempotent replays, conflicts, leases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotAllowed
from labeling import services
from labeling.models import Assignment, Judgement


@pytest.fixture
def leased(make_user, make_project, make_comparison):
    def make(k=2, overlap=1):
        user = make_user()
        project = make_project(members=[user], overlap=overlap)
        make_comparison(project, k=k)
        lease = services.assign_next_comparison(annotator=user, project=project)
        return user, lease

    return make


@pytest.mark.parametrize("choice", ["left", "right"])
def test_left_and_right_mean_the_items_as_this_annotator_saw_them(leased, choice):
    user, lease = leased()
    left, right = lease.display_order
    result = services.record_judgement(annotator=user, comparison=lease.comparison, choice=choice)
    assert result.created
    assert result.judgement.ranking == ([left, right] if choice == "left" else [right, left])
    assert result.judgement.shown_order == [left, right]


def test_an_identical_replay_returns_the_stored_row(leased):
    user, lease = leased()
    first = services.record_judgement(
        annotator=user, comparison=lease.comparison, choice="tie", time_spent_ms=1200
    )
    again = services.record_judgement(
        annotator=user, comparison=lease.comparison, choice="tie", time_spent_ms=1300
    )
    assert (first.created, again.created) == (True, False)
    assert again.judgement.pk == first.judgement.pk
    assert Judgement.objects.filter(annotator=user).count() == 1


def test_a_different_answer_to_a_judged_comparison_is_a_conflict(leased):
    user, lease = leased()
    services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")
    with pytest.raises(Conflict, match="already judged"):
        services.record_judgement(annotator=user, comparison=lease.comparison, choice="right")
    assert Judgement.objects.get(annotator=user).choice == "left"


def test_judging_without_a_lease_is_refused(make_user, make_project, make_comparison):
    user = make_user()
    project = make_project(members=[user])
    comparison = make_comparison(project)
    with pytest.raises(NotAllowed, match="no lease"):
        services.record_judgement(annotator=user, comparison=comparison, choice="left")


def test_a_ranking_is_stored_as_given_and_must_be_a_permutation(leased):
    user, lease = leased(k=4)
    order = list(reversed(lease.display_order))
    with pytest.raises(InvalidInput, match="ranking must list each"):
        services.record_judgement(annotator=user, comparison=lease.comparison, ranking=order[:3])
    with pytest.raises(InvalidInput, match="send 'ranking'"):
        services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")
    result = services.record_judgement(annotator=user, comparison=lease.comparison, ranking=order)
    assert (result.judgement.choice, result.judgement.ranking) == ("ranking", order)


def test_an_expired_lease_is_still_honoured_while_the_comparison_has_room(leased):
    user, lease = leased()
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=5))
    result = services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")
    assert result.created


def test_an_expired_lease_given_to_someone_else_is_a_conflict(
    make_user, make_project, make_comparison
):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b], overlap=1)
    make_comparison(project)
    lease = services.assign_next_comparison(annotator=a, project=project)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=5))
    services.assign_next_comparison(annotator=b, project=project)
    with pytest.raises(Conflict, match="expired"):
        services.record_judgement(annotator=a, comparison=lease.comparison, choice="left")


def test_an_answer_to_an_order_the_lease_no_longer_has_is_a_conflict_and_stores_nothing(
    leased,
):
    user, lease = leased()
    left, right = lease.display_order
    with pytest.raises(Conflict, match="reload"):
        services.record_judgement(
            annotator=user, comparison=lease.comparison, choice="left", shown_order=[right, left]
        )
    assert not Judgement.objects.exists()
    stored = services.record_judgement(
        annotator=user, comparison=lease.comparison, choice="left", shown_order=[left, right]
    )
    assert stored.created and stored.judgement.ranking == [left, right]
