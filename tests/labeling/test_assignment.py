"""assign_next_comparison: overlap, leases, expiry, skips, gold mixing, shuffled order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import NotAllowed
from labeling import services
from labeling.models import Assignment, Comparison


def test_asking_again_returns_the_same_open_lease(make_user, make_project, make_comparison):
    user = make_user()
    project = make_project(members=[user])
    make_comparison(project)
    make_comparison(project)
    first = services.assign_next_comparison(annotator=user, project=project)
    again = services.assign_next_comparison(annotator=user, project=project)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=user, status="open").count() == 1


def test_a_comparison_is_leased_to_at_most_overlap_annotators(
    make_user, make_project, make_comparison
):
    users = [make_user() for _ in range(3)]
    project = make_project(members=users, overlap=2)
    comparison = make_comparison(project)
    first = services.assign_next_comparison(annotator=users[0], project=project)
    second = services.assign_next_comparison(annotator=users[1], project=project)
    third = services.assign_next_comparison(annotator=users[2], project=project)
    assert first.comparison_id == second.comparison_id == comparison.pk
    assert third is None


def test_judged_comparisons_are_not_offered_again_and_complete_at_overlap(
    make_user, make_project, make_comparison
):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b], overlap=2)
    comparison = make_comparison(project)
    lease = services.assign_next_comparison(annotator=a, project=project)
    services.record_judgement(annotator=a, comparison=lease.comparison, choice="left")
    assert services.assign_next_comparison(annotator=a, project=project) is None
    lease = services.assign_next_comparison(annotator=b, project=project)
    services.record_judgement(annotator=b, comparison=lease.comparison, choice="right")
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.COMPLETE
    assert comparison.judgement_count == 2


def test_expired_leases_return_to_the_pool(make_user, make_project, make_comparison):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b], overlap=1)
    make_comparison(project)
    lease = services.assign_next_comparison(annotator=a, project=project)
    assert services.assign_next_comparison(annotator=b, project=project) is None
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    other = services.assign_next_comparison(annotator=b, project=project)
    assert other is not None and other.comparison_id == lease.comparison_id


def test_release_expired_leases_marks_only_expired_ones(make_user, make_project, make_comparison):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b])
    make_comparison(project)
    make_comparison(project)
    old = services.assign_next_comparison(annotator=a, project=project)
    fresh = services.assign_next_comparison(annotator=b, project=project)
    Assignment.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert services.release_expired_leases() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("released", "open")


def test_a_skip_is_not_offered_again_but_stays_open_for_others(
    make_user, make_project, make_comparison
):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b], overlap=1)
    comparison = make_comparison(project)
    lease = services.assign_next_comparison(annotator=a, project=project)
    services.record_judgement(annotator=a, comparison=lease.comparison, choice="skip")
    assert services.assign_next_comparison(annotator=a, project=project) is None
    lease_b = services.assign_next_comparison(annotator=b, project=project)
    assert lease_b.comparison_id == comparison.pk
    comparison.refresh_from_db()
    assert comparison.judgement_count == 0 and comparison.status == "open"


def test_display_order_is_shuffled_per_assignment(make_user, make_project, make_comparison):
    users = [make_user() for _ in range(40)]
    project = make_project(members=users, overlap=40)
    comparison = make_comparison(project, k=3)
    stored = list(comparison.slots.order_by("position").values_list("item_id", flat=True))
    orders = {
        tuple(services.assign_next_comparison(annotator=u, project=project).display_order)
        for u in users
    }
    assert all(sorted(order) == sorted(stored) for order in orders)
    assert len(orders) > 1  # 40 draws of 6 orders: all equal has probability 6**-39


def test_gold_comparisons_are_mixed_in_at_the_configured_rate(
    make_user, make_project, make_comparison
):
    users = [make_user() for _ in range(200)]
    project = make_project(members=users, overlap=200, gold_rate=0.25)
    regular = make_comparison(project)
    gold = make_comparison(project, gold=None)
    gold.gold_ranking = list(gold.slots.order_by("position").values_list("item_id", flat=True))
    gold.save()
    rng = random.Random(7)
    got_gold = sum(
        services.assign_next_comparison(annotator=u, project=project, rng=rng).comparison_id
        == gold.pk
        for u in users
    )
    assert 30 <= got_gold <= 70  # binomial(200, 0.25): mean 50, sd 6.1
    assert regular.pk != gold.pk


def test_gold_comparisons_do_not_count_towards_overlap(make_user, make_project, make_comparison):
    users = [make_user() for _ in range(3)]
    project = make_project(members=users, overlap=1, gold_rate=1.0)
    gold = make_comparison(project)
    gold.gold_ranking = list(gold.slots.order_by("position").values_list("item_id", flat=True))
    gold.save()
    for user in users:
        lease = services.assign_next_comparison(annotator=user, project=project)
        assert lease.comparison_id == gold.pk
        services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")


def test_non_members_cannot_be_assigned(make_user, make_project, make_comparison):
    outsider = make_user()
    project = make_project()
    make_comparison(project)
    with pytest.raises(NotAllowed):
        services.assign_next_comparison(annotator=outsider, project=project)


def test_a_lease_renewed_after_it_expired_keeps_the_order_it_was_shown_in(
    make_user, make_project, make_comparison
):
    import random

    user = make_user()
    project = make_project(members=[user])
    make_comparison(project, k=5)
    first = services.assign_next_comparison(annotator=user, project=project, rng=random.Random(1))
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    # The only comparison left is the one whose lease expired: it is leased again, with a
    # different shuffle drawn, and still shows its items as before.
    again = services.assign_next_comparison(annotator=user, project=project, rng=random.Random(2))
    assert again.comparison_id == first.comparison_id
    assert again.display_order == first.display_order
    assert Assignment.objects.get(pk=again.pk).display_order == first.display_order
