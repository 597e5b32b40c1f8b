"""PUT /api/comparisons/{id}/judgement/: an annotator changes an answer within the project's
revise_window_s; the old answer is kept, counts and status follow, reads use the new one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from labeling import preferences, services
from labeling import stats as labeling_stats
from labeling.models import Comparison, Judgement, JudgementRevision


def _url(comparison_id: int) -> str:
    return f"/api/comparisons/{comparison_id}/judgement/"


@pytest.fixture
def world(make_user, make_project, make_comparison, api_client_for):
    """make(overlap, k, gold, config) -> (annotator's client, their lease, project)."""

    def make(*, overlap=1, k=2, gold=None, config=None, user=None):
        user = user or make_user()
        project = make_project(members=[user], overlap=overlap, config=config or {})
        make_comparison(project, k=k, gold=gold)
        lease = services.assign_next_comparison(annotator=user, project=project)
        return api_client_for(user), lease, project

    return make


def _answered_ago(lease, seconds: float) -> None:
    """Pretend the judgement of ``lease`` was given ``seconds`` ago."""
    judgement = Judgement.objects.get(comparison_id=lease.comparison_id)
    Judgement.objects.filter(pk=judgement.pk).update(
        created_at=judgement.created_at - timedelta(seconds=seconds)
    )


# --- inside and outside the window ------------------------------------------------------------
def test_a_revision_inside_the_window_is_200_and_keeps_the_old_answer(world):
    client, lease, _ = world()
    left, right = lease.display_order
    first = client.post(
        _url(lease.comparison_id), {"choice": "left", "time_spent_ms": 800}, format="json"
    )
    assert first.status_code == 201 and first.json()["revised_at"] is None

    response = client.put(
        _url(lease.comparison_id),
        {"choice": "right", "time_spent_ms": 1500, "shown_order": [left, right]},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["choice"], body["ranking"]) == (
        first.json()["id"],
        "right",
        [right, left],
    )
    assert body["revised_at"] is not None and body["time_spent_ms"] == 1500
    judgement = Judgement.objects.get()
    assert (judgement.choice, judgement.ranking, judgement.shown_order) == (
        "right",
        [right, left],
        [left, right],
    )
    (old,) = JudgementRevision.objects.filter(judgement=judgement)
    assert (old.choice, old.ranking, old.shown_order, old.time_spent_ms) == (
        "left",
        [left, right],
        [left, right],
        800,
    )
    assert old.answered_at == judgement.created_at
    assert old.revised_at == judgement.revised_at


def test_a_second_revision_keeps_both_earlier_answers_in_order(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    client.put(_url(lease.comparison_id), {"choice": "tie"}, format="json")
    client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    judgement = Judgement.objects.get()
    history = list(judgement.revisions.values_list("choice", flat=True))
    assert (judgement.choice, history) == ("right", ["left", "tie"])
    first, second = judgement.revisions.all()
    assert second.answered_at == first.revised_at  # the tie was given when the left went


def test_an_identical_put_is_200_and_adds_no_history(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    revised = client.put(_url(lease.comparison_id), {"choice": "tie"}, format="json")

    again = client.put(_url(lease.comparison_id), {"choice": "tie"}, format="json")

    assert again.status_code == 200
    assert again.json()["revised_at"] == revised.json()["revised_at"]
    assert JudgementRevision.objects.count() == 1


def test_a_revision_after_the_window_is_409_naming_the_window(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    _answered_ago(lease, 601)

    response = client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "revise_window_s = 600 s" in detail and "'left'" in detail
    assert Judgement.objects.get().choice == "left"
    assert not JudgementRevision.objects.exists()


def test_an_identical_put_after_the_window_changes_nothing_and_is_200(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    _answered_ago(lease, 3600)

    response = client.put(_url(lease.comparison_id), {"choice": "left"}, format="json")

    assert response.status_code == 200 and response.json()["revised_at"] is None


def test_the_window_is_the_projects_revise_window_s(world):
    client, lease, _ = world(config={"revise_window_s": 30})
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    _answered_ago(lease, 20)
    assert (
        client.put(_url(lease.comparison_id), {"choice": "tie"}, format="json").status_code == 200
    )

    _answered_ago(lease, 20)  # 40 s ago now: the window counts from the first answer
    late = client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    assert late.status_code == 409 and "revise_window_s = 30 s" in late.json()["detail"]


def test_a_window_of_zero_switches_revising_off(world):
    client, lease, _ = world(config={"revise_window_s": 0})
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")

    response = client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    assert response.status_code == 409 and "revise_window_s is 0" in response.json()["detail"]


@pytest.mark.parametrize("kind", ["text", "trajectory"])
def test_revise_window_s_defaults_to_600_for_both_kinds(api_client_for, make_user, kind):
    config = {"render_clips": False} if kind == "trajectory" else {}
    response = api_client_for(make_user(staff=True)).post(
        "/api/projects/",
        {"slug": f"new-{kind}", "name": "New", "kind": kind, "config": config},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["config"]["revise_window_s"] == 600


@pytest.mark.parametrize("bad", [-1, 1.5, "600", True, None])
def test_revise_window_s_must_be_an_integer_of_at_least_zero(api_client_for, make_user, bad):
    response = api_client_for(make_user(staff=True)).post(
        "/api/projects/",
        {"slug": "bad", "name": "Bad", "kind": "text", "config": {"revise_window_s": bad}},
        format="json",
    )

    assert response.status_code == 400
    assert "integer of at least 0" in response.json()["config"]["revise_window_s"]


# --- who may revise -----------------------------------------------------------------------------
def test_another_member_cannot_revise_an_answer_that_is_not_theirs(
    world, make_user, api_client_for
):
    client, lease, project = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    other = make_user()
    services.add_member(project=project, user=other)

    response = api_client_for(other).put(
        _url(lease.comparison_id), {"choice": "right"}, format="json"
    )

    assert response.status_code == 404
    assert "You have not judged" in response.json()["detail"]
    assert Judgement.objects.get().choice == "left"


@pytest.mark.parametrize(
    ("caller", "expected"), [("anonymous", 401), ("outsider", 404), ("staff", 404)]
)
def test_callers_without_a_judgement_are_refused(
    world, make_user, api_client_for, caller, expected
):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    user = {"anonymous": None, "outsider": make_user(), "staff": make_user(staff=True)}[caller]

    response = api_client_for(user).put(
        _url(lease.comparison_id), {"choice": "right"}, format="json"
    )

    assert response.status_code == expected
    assert Judgement.objects.get().choice == "left" and not JudgementRevision.objects.exists()


def test_putting_before_judging_is_404_and_says_to_post(world):
    client, lease, _ = world()

    response = client.put(_url(lease.comparison_id), {"choice": "left"}, format="json")

    assert response.status_code == 404 and "POST" in response.json()["detail"]
    assert not Judgement.objects.exists()


def test_an_imported_judgement_cannot_be_revised(
    make_user, make_project, make_comparison, api_client_for
):
    staff = make_user(staff=True)
    project = make_project(members=[staff])
    comparison = make_comparison(project)
    ids = list(comparison.slots.values_list("item_id", flat=True))
    services.record_imported_judgement(importer=staff, comparison=comparison, ranking=ids)

    response = api_client_for(staff).put(_url(comparison.pk), {"choice": "right"}, format="json")

    assert response.status_code == 403 and "imported" in response.json()["detail"]


def test_a_post_with_another_answer_is_still_409_and_points_to_put(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")

    response = client.post(_url(lease.comparison_id), {"choice": "right"}, format="json")

    assert response.status_code == 409 and "PUT" in response.json()["detail"]


def test_a_revision_against_another_order_is_409(world):
    client, lease, _ = world()
    left, right = lease.display_order
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")

    response = client.put(
        _url(lease.comparison_id), {"choice": "left", "shown_order": [right, left]}, format="json"
    )

    assert response.status_code == 409 and "reload" in response.json()["detail"]
    assert Judgement.objects.get().ranking == [left, right]


def test_a_closed_comparison_cannot_be_revised(world):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    Comparison.objects.filter(pk=lease.comparison_id).update(status=Comparison.Status.CLOSED)

    response = client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    assert response.status_code == 409 and "closed" in response.json()["detail"]


# --- counts and status ------------------------------------------------------------------------
def _comparison(lease) -> tuple[int, str]:
    c = Comparison.objects.get(pk=lease.comparison_id)
    return c.judgement_count, c.status


def test_skip_revised_into_an_answer_counts_and_completes_the_comparison(world):
    client, lease, _ = world(overlap=1)
    client.post(_url(lease.comparison_id), {"choice": "skip"}, format="json")
    assert _comparison(lease) == (0, "open")

    client.put(_url(lease.comparison_id), {"choice": "left"}, format="json")

    assert _comparison(lease) == (1, "complete")


def test_answer_revised_into_a_skip_stops_counting_and_reopens_it_for_others(world, make_user):
    client, lease, project = world(overlap=1)
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    assert _comparison(lease) == (1, "complete")
    other = make_user()
    services.add_member(project=project, user=other)
    assert services.assign_next_comparison(annotator=other, project=project) is None

    client.put(_url(lease.comparison_id), {"choice": "skip"}, format="json")

    assert _comparison(lease) == (0, "open")
    again = services.assign_next_comparison(annotator=other, project=project)
    assert again is not None and again.comparison_id == lease.comparison_id


def test_answer_to_answer_changes_no_count_and_skips_below_overlap_stay_open(world):
    client, lease, _ = world(overlap=2)
    client.post(_url(lease.comparison_id), {"choice": "skip"}, format="json")
    client.put(_url(lease.comparison_id), {"choice": "tie"}, format="json")
    assert _comparison(lease) == (1, "open")  # one of two

    client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")
    assert _comparison(lease) == (1, "open")
    client.put(_url(lease.comparison_id), {"choice": "skip"}, format="json")
    assert _comparison(lease) == (0, "open")


def test_a_gold_comparison_can_be_revised_and_never_counts(world):
    client, lease, _ = world(gold="tie")
    client.post(_url(lease.comparison_id), {"choice": "skip"}, format="json")

    response = client.put(_url(lease.comparison_id), {"choice": "left"}, format="json")

    assert response.status_code == 200
    assert _comparison(lease) == (0, "open")


def test_a_ranking_can_be_revised(world):
    client, lease, _ = world(k=3)
    order = list(lease.display_order)
    client.post(_url(lease.comparison_id), {"ranking": order}, format="json")

    response = client.put(_url(lease.comparison_id), {"ranking": order[::-1]}, format="json")

    assert response.status_code == 200 and response.json()["ranking"] == order[::-1]
    assert JudgementRevision.objects.get().ranking == order


def test_put_with_next_returns_the_lease_the_annotator_still_holds(world, make_comparison):
    client, lease, project = world()
    make_comparison(project)
    posted = client.post(_url(lease.comparison_id), {"choice": "left", "next": True}, format="json")
    held = posted.json()["next"]

    response = client.put(
        _url(lease.comparison_id), {"choice": "right", "next": True}, format="json"
    )

    assert response.json()["next"]["id"] == held["id"] != lease.comparison_id
    assert [i["id"] for i in response.json()["next"]["items"]] == [i["id"] for i in held["items"]]


# --- what reads Judgement sees the latest answer ---------------------------------------------
def test_exports_preferences_and_stats_use_the_latest_answer(world, make_user, api_client_for):
    staff = make_user(staff=True)
    client, lease, project = world(gold=None)
    left, right = lease.display_order
    Comparison.objects.filter(pk=lease.comparison_id).update(gold_ranking=[right, left])
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    before = labeling_stats.project_stats(project, for_user=staff)  # cached from here
    assert before["annotators"][0]["gold_accuracy"] == 0.0

    client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")

    after = labeling_stats.project_stats(project, for_user=staff)
    assert after["annotators"][0]["gold_accuracy"] == 1.0
    staff_client = api_client_for(staff)
    full = staff_client.get(f"/api/projects/{project.slug}/export/?format=full")
    (line,) = [json.loads(x) for x in b"".join(full.streaming_content).splitlines()]
    assert (line["choice"], line["ranking"]) == ("right", [right, left])
    assert line["revised_at"] is not None and line["revised_at"] > line["created_at"]
    trl = staff_client.get(f"/api/projects/{project.slug}/export/?format=trl")
    (pair,) = [json.loads(x) for x in b"".join(trl.streaming_content).splitlines()]
    texts = dict(project.items.values_list("pk", "text"))
    assert (pair["chosen"], pair["rejected"]) == (texts[right], texts[left])
    (preference,) = preferences.preferences(project)
    assert (preference.a_id, preference.b_id) == (right, left)


def test_stats_see_a_skip_revised_into_an_answer(world, make_user):
    staff = make_user(staff=True)
    client, lease, project = world()
    client.post(_url(lease.comparison_id), {"choice": "skip"}, format="json")
    assert labeling_stats.project_stats(project, for_user=staff)["annotators"][0]["skips"] == 1

    client.put(_url(lease.comparison_id), {"choice": "left"}, format="json")

    stats = labeling_stats.project_stats(project, for_user=staff)
    assert stats["annotators"][0]["skips"] == 0
    assert stats["comparisons_complete"] == 1


def test_the_openapi_schema_documents_put(api_client_for, make_user):
    response = api_client_for(make_user(staff=True)).get("/api/schema/")
    schema = yaml.safe_load(response.content)

    put = schema["paths"]["/api/comparisons/{comparison_id}/judgement/"]["put"]
    assert "revise_window_s" in put["description"]
    assert {"200", "404", "409"} <= set(put["responses"])


def test_the_admin_shows_a_judgements_earlier_answers_read_only(world, django_user_model):
    client, lease, _ = world()
    client.post(_url(lease.comparison_id), {"choice": "left"}, format="json")
    client.put(_url(lease.comparison_id), {"choice": "right"}, format="json")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    admin = Client()
    admin.force_login(root)
    judgement = Judgement.objects.get()

    response = admin.get(reverse("admin:labeling_judgement_change", args=[judgement.pk]))

    assert response.status_code == 200
    (inline,) = [
        f for f in response.context["inline_admin_formsets"] if f.opts.model is JudgementRevision
    ]
    (shown,) = inline.formset.queryset
    assert shown.choice == "left"
    assert not (inline.has_add_permission or inline.has_change_permission)
    assert not inline.has_delete_permission
    html = " ".join(response.content.decode().split())
    assert '<td class="field-choice"> <p>Left</p> </td>' in html  # shown, not a form field
