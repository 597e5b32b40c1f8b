"""Deleting an item (in the admin, say) closes the comparisons it leaves with fewer than
two items and releases their leases: nothing serves, judges or exports half a comparison.
Removing a member releases their lease."""

from __future__ import annotations

import pytest

from core.errors import Conflict
from labeling import exports, services
from labeling.models import Assignment, Comparison, Item


@pytest.fixture
def pair(make_user, make_project, make_comparison):
    user = make_user()
    project = make_project(members=[user])
    comparison = make_comparison(project)
    return user, project, comparison


@pytest.mark.django_db
def test_a_comparison_left_with_one_item_is_closed_and_never_served(pair, make_comparison):
    user, project, comparison = pair
    comparison.items.first().delete()
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.CLOSED
    assert services.assign_next_comparison(annotator=user, project=project) is None
    other = make_comparison(project)
    assert services.assign_next_comparison(annotator=user, project=project).comparison_id == (
        other.pk
    )


@pytest.mark.django_db
def test_a_lease_on_it_is_released_and_answering_it_is_a_conflict(pair, make_comparison):
    user, project, comparison = pair
    lease = services.assign_next_comparison(annotator=user, project=project)
    Item.objects.filter(pk=lease.display_order[0]).delete()

    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.RELEASED
    assert services.assign_next_comparison(annotator=user, project=project) is None
    with pytest.raises(Conflict, match="closed"):
        services.record_judgement(annotator=user, comparison=comparison.pk, choice="left")


@pytest.mark.django_db
def test_a_ranking_keeps_its_comparison_open_while_two_items_remain(
    make_user, make_project, make_comparison
):
    project = make_project()
    comparison = make_comparison(project, k=3)
    comparison.items.first().delete()
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.OPEN


@pytest.mark.django_db
def test_exports_of_judgements_whose_item_was_deleted_still_work(pair):
    user, project, comparison = pair
    lease = services.assign_next_comparison(annotator=user, project=project)
    services.record_judgement(annotator=user, comparison=comparison.pk, choice="left")
    Item.objects.filter(pk=lease.display_order[1]).delete()

    assert list(exports.export_trl(project)) == []
    (row,) = list(exports.export_full(project))
    assert [item["id"] for item in row["items"]] == [lease.display_order[0]]


@pytest.mark.django_db
def test_removing_a_member_releases_their_lease_at_once(pair, make_user):
    user, project, comparison = pair
    lease = services.assign_next_comparison(annotator=user, project=project)
    project.memberships.filter(user=user).delete()

    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.RELEASED
    comparison.refresh_from_db()
    assert comparison.open_leases == 0
    other = make_user()
    services.add_member(project=project, user=other)
    assert services.assign_next_comparison(annotator=other, project=project).comparison_id == (
        comparison.pk
    )
