"""Qualification: a new member first gets the project's gold comparisons, and below the
bar gets a 403 with the reason and trains nothing; staff can waive or block."""

from __future__ import annotations

import pytest

from labeling import preferences, services
from labeling.models import Membership

RULE = {"gold": 2, "min_accuracy": 0.75}


@pytest.fixture
def project(make_user, make_project, make_comparison):
    """Three gold pairs (the first item is right) and four ordinary ones."""
    annie, staff = make_user("annie"), make_user("boss", staff=True)
    project = make_project("q", members=[annie], config={"qualification": RULE})
    gold = [make_comparison(project, texts=[f"good {i}", f"bad {i}"]) for i in range(3)]
    for comparison in gold:
        ids = list(comparison.items.order_by("slots__position").values_list("pk", flat=True))
        comparison.gold_ranking = ids
        comparison.save(update_fields=["gold_ranking"])
    for _ in range(4):
        make_comparison(project)
    return {"project": project, "annie": annie, "staff": staff, "gold": {c.pk for c in gold}}


def _answer(client, body, *, right: bool):
    """Judge the leased pair: the item whose text starts with "good" wins when ``right``
    (ordinary pairs: the left one)."""
    items = body["items"]
    good = [i for i, item in enumerate(items) if item["text"].startswith("good")]
    pick = good[0] if good else 0
    choice = ("left", "right")[pick if right else 1 - pick]
    answer = client.post(
        f"/api/comparisons/{body['id']}/judgement/", {"choice": choice}, format="json"
    )
    assert answer.status_code == 201, answer.content


def _next(client, slug="q"):
    return client.post(f"/api/projects/{slug}/next/")


def _standing(world) -> tuple[str, float | None]:
    row = Membership.objects.get(project=world["project"], user=world["annie"])
    return row.qualification, row.qualification_accuracy


def test_a_new_member_gets_gold_first_and_ordinary_comparisons_after_passing(
    project, api_client_for
):
    client = api_client_for(project["annie"])
    served = []
    for _ in range(2):
        body = _next(client).json()
        served.append(body["id"])
        _answer(client, body, right=True)

    after = _next(client)

    assert set(served) <= project["gold"]  # gold_rate is 0: only qualification served them
    assert after.status_code == 200 and after.json()["id"] not in project["gold"]
    assert _standing(project) == ("passed", 1.0)


def test_below_the_bar_next_is_403_with_the_reason_and_nothing_trains(project, api_client_for):
    client = api_client_for(project["annie"])
    for right in (True, False):
        _answer(client, _next(client).json(), right=right)

    refused = _next(client)

    assert refused.status_code == 403
    assert "50%" in refused.json()["detail"] and "needs 75%" in refused.json()["detail"]
    assert _standing(project) == ("failed", 0.5)
    assert preferences.preferences(project["project"]) == []


def test_a_skip_counts_as_a_wrong_qualification_answer(project, api_client_for):
    client = api_client_for(project["annie"])
    _answer(client, _next(client).json(), right=True)
    skipped = _next(client).json()
    client.post(f"/api/comparisons/{skipped['id']}/judgement/", {"choice": "skip"}, format="json")

    assert _next(client).status_code == 403
    assert _standing(project) == ("failed", 0.5)


def test_staff_waive_a_failed_member_and_their_judgements_train(project, api_client_for):
    client = api_client_for(project["annie"])
    for right in (True, False):
        _answer(client, _next(client).json(), right=right)
    assert _next(client).status_code == 403

    waived = api_client_for(project["staff"]).patch(
        "/api/projects/q/members/annie/", {"qualification": "waived"}, format="json"
    )
    body = _next(client).json()
    _answer(client, body, right=True)

    assert waived.status_code == 200 and waived.json()["qualification"] == "waived"
    assert body["id"] not in project["gold"]
    assert {p.annotator_id for p in preferences.preferences(project["project"])} == {
        project["annie"].pk
    }


def test_staff_block_a_member_and_the_member_list_shows_it(project, api_client_for):
    staff = api_client_for(project["staff"])
    staff.patch("/api/projects/q/members/annie/", {"qualification": "blocked"}, format="json")

    refused = _next(api_client_for(project["annie"]))
    listed = staff.get("/api/projects/q/members/").json()

    assert refused.status_code == 403 and "paused" in refused.json()["detail"]
    assert listed == [
        {
            "username": "annie",
            "qualification": "blocked",
            "qualification_accuracy": None,
            "joined_at": listed[0]["joined_at"],
        }
    ]


def test_the_override_is_for_staff_and_takes_only_known_values(project, api_client_for):
    staff = api_client_for(project["staff"])

    by_annotator = api_client_for(project["annie"]).patch(
        "/api/projects/q/members/annie/", {"qualification": "waived"}, format="json"
    )
    bad = staff.patch("/api/projects/q/members/annie/", {"qualification": "passed"}, format="json")
    stranger = staff.patch("/api/projects/q/members/boss/", {"qualification": "waived"})

    assert by_annotator.status_code == 403
    assert bad.status_code == 400 and "qualification" in str(bad.json())
    assert stranger.status_code == 404 and "not a member" in stranger.json()["detail"]
    assert _standing(project) == ("pending", None)


def test_a_member_still_qualifying_with_no_gold_left_is_told_why(
    make_user, make_project, make_comparison, api_client_for
):
    annie = make_user("annie")
    project = make_project("few", members=[annie], config={"qualification": RULE})
    gold = make_comparison(project, texts=["good", "bad"])
    gold.gold_ranking = list(gold.items.order_by("slots__position").values_list("pk", flat=True))
    gold.save(update_fields=["gold_ranking"])
    make_comparison(project)
    client = api_client_for(annie)
    _answer(client, _next(client, "few").json(), right=True)

    refused = _next(client, "few")

    assert refused.status_code == 403
    assert "2 gold comparisons" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("qualification", "named"),
    [
        ({"gold": 0, "min_accuracy": 0.5}, "config.qualification.gold"),
        ({"gold": 3}, "config.qualification"),
        ({"gold": 3, "min_accuracy": 1.5}, "config.qualification.min_accuracy"),
        ({"gold": 3, "min_accuracy": 0.5, "bar": 1}, "config.qualification.bar"),
        ([3, 0.5], "config.qualification"),
    ],
)
def test_a_bad_qualification_is_a_400_naming_the_key(
    make_user, api_client_for, qualification, named
):
    response = api_client_for(make_user(staff=True)).post(
        "/api/projects/",
        {"slug": "bad", "name": "Bad", "config": {"qualification": qualification}},
        format="json",
    )

    assert response.status_code == 400
    assert named in str(response.json())


def test_without_qualification_next_costs_no_extra_query(
    make_user, make_project, make_comparison, django_assert_num_queries
):
    annie = make_user("annie")
    plain = make_project("plain", members=[annie])
    make_comparison(plain)

    with django_assert_num_queries(5) as captured:
        services.assign_next_comparison(annotator=annie, project=plain)

    # The savepoint, the current lease, a candidate, the lease written, the release.
    assert [q["sql"].split()[0] for q in captured.captured_queries] == [
        "SAVEPOINT",
        "SELECT",
        "SELECT",
        "INSERT",
        "RELEASE",
    ]
