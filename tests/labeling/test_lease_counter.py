"""Comparison.open_leases, kept by a database trigger, always equals the number of open
leases, whatever writes them; and judging with "next": true hands out the next lease."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from labeling import services
from labeling.models import Assignment, Comparison


def _counts_agree(project) -> list[tuple[int, int, int]]:
    """(comparison, counter, actual) for every comparison whose counter is wrong."""
    rows = Comparison.objects.filter(project=project).annotate(
        actual=Count("assignments", filter=Q(assignments__status="open"))
    )
    return [(c.pk, c.open_leases, c.actual) for c in rows if c.open_leases != c.actual]


def test_the_counter_follows_leases_judgements_skips_and_expiry(
    make_user, make_project, make_comparison
):
    users = [make_user() for _ in range(4)]
    project = make_project(members=users, overlap=2)
    for _ in range(3):
        make_comparison(project)
    leases = [services.assign_next_comparison(annotator=u, project=project) for u in users]
    assert sorted(Comparison.objects.values_list("open_leases", flat=True)) == [0, 2, 2]
    services.record_judgement(annotator=users[0], comparison=leases[0].comparison, choice="left")
    services.record_judgement(annotator=users[1], comparison=leases[1].comparison, choice="skip")
    assert _counts_agree(project) == []
    Assignment.objects.filter(pk=leases[2].pk).update(expires_at=timezone.now() - timedelta(1))
    assert services.release_expired_leases() == 1
    assert _counts_agree(project) == []
    assert Comparison.objects.get(pk=leases[3].comparison_id).open_leases == 1


def test_the_counter_follows_edits_and_deletes_made_outside_the_services(
    make_user, make_project, make_comparison
):
    a, b = make_user(), make_user()
    project = make_project(members=[a, b], overlap=2)
    first, second = make_comparison(project), make_comparison(project)
    lease = services.assign_next_comparison(annotator=a, project=project)
    services.assign_next_comparison(annotator=b, project=project)
    # What an admin might do by hand: move a lease to another comparison, close, reopen.
    Assignment.objects.filter(pk=lease.pk).update(comparison=second)
    assert _counts_agree(project) == []
    Assignment.objects.filter(pk=lease.pk).update(status="released")
    assert _counts_agree(project) == []
    Assignment.objects.filter(pk=lease.pk).update(status="open")
    assert _counts_agree(project) == []
    Assignment.objects.filter(annotator=b).delete()
    assert _counts_agree(project) == []
    assert {first.pk: 0, second.pk: 1} == dict(
        Comparison.objects.filter(project=project).values_list("pk", "open_leases")
    )


def test_judging_with_next_returns_the_next_comparison_then_null(
    make_user, make_project, make_comparison, api_client_for
):
    user = make_user()
    project = make_project(members=[user], overlap=1)
    comparisons = {make_comparison(project).pk, make_comparison(project).pk}
    client = api_client_for(user)
    first = client.post(f"/api/projects/{project.slug}/next/").json()
    answer = client.post(
        f"/api/comparisons/{first['id']}/judgement/", {"choice": "left", "next": True}, "json"
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["comparison"] == first["id"] and body["choice"] == "left"
    second = body["next"]
    assert {first["id"], second["id"]} == comparisons
    assert len(second["items"]) == 2 and second["progress"] == {"judged": 1, "remaining": 1}
    assert Assignment.objects.get(annotator=user, status="open").comparison_id == second["id"]
    last = client.post(
        f"/api/comparisons/{second['id']}/judgement/", {"choice": "tie", "next": True}, "json"
    )
    assert last.status_code == 201 and last.json()["next"] is None
    # Without the flag the answer is the judgement alone, as before.
    replay = client.post(f"/api/comparisons/{second['id']}/judgement/", {"choice": "tie"}, "json")
    assert replay.status_code == 200 and "next" not in replay.json()
