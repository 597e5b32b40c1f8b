"""Who may do what: every API endpoint and page, for every kind of caller.

Callers: ``anonymous``; ``outsider``, an annotator of another project; ``member``, an
annotator of the project under test; ``staff``, a project manager who is not a member;
``reviewer``, staff with the reviewer role; ``bare``, staff with no role or permission.
Anonymous API calls get 401; pages send them to the login page. A non-member learns nothing
about a project (404). Members may annotate (next, progress, stats, judgement) but not
manage (403). Managers may manage everything, reviewers read and export, staff without
permissions only see (core/roles.py); annotating needs a membership and a lease, like
anyone else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from labeling import webhooks
from labeling.models import Comparison, ImportJob, Judgement, Project

ANONYMOUS, OUTSIDER, MEMBER, STAFF = "anonymous", "outsider", "member", "staff"
REVIEWER, BARE = "reviewer", "bare"
CALLERS = (ANONYMOUS, OUTSIDER, MEMBER, STAFF, REVIEWER, BARE)


@dataclass
class World:
    project: Project
    other_project: Project
    comparison: Comparison
    other_comparison: Comparison
    users: dict[str, AbstractBaseUser | None]


@pytest.fixture
def world(make_user, make_project, make_comparison) -> World:
    member = make_user("member")
    outsider = make_user("outsider")
    staff = make_user("staff", staff=True)
    reviewer, bare = make_user("reviewer", role="reviewer"), make_user("bare", role="manager")
    bare.groups.clear()  # staff status and nothing else
    make_user("newcomer")  # someone staff can add as a member
    project = make_project("secret", members=[member])
    other_project = make_project("elsewhere", members=[outsider])
    return World(
        project=project,
        other_project=other_project,
        comparison=make_comparison(project),
        other_comparison=make_comparison(other_project),
        users={
            ANONYMOUS: None,
            OUTSIDER: outsider,
            MEMBER: member,
            STAFF: staff,
            REVIEWER: reviewer,
            BARE: bare,
        },
    )


# --- the API ---------------------------------------------------------------------------------
# Each request takes (client, world) and returns the response; the matrix below says what
# each caller gets back.
def _judge(client, w: World):
    return client.post(
        f"/api/comparisons/{w.comparison.pk}/judgement/", {"choice": "left"}, format="json"
    )


def _import_job(w: World) -> ImportJob:
    return ImportJob.objects.get_or_create(project=w.project, importer=w.users[STAFF])[0]


def _webhook(w: World) -> int:
    return webhooks.create_webhook(
        project=w.project, url="https://hooks.example.com/x", events=["round.finished"]
    ).pk


def _lease_then_judge(client, w: World):
    client.post(f"/api/projects/{w.project.slug}/next/")
    return _judge(client, w)


REQUESTS = {
    "token": lambda c, w: c.post(
        "/api/auth/token/", {"username": "member", "password": "pw"}, format="json"
    ),
    "projects-list": lambda c, w: c.get("/api/projects/"),
    "projects-create": lambda c, w: c.post(
        "/api/projects/", {"slug": "fresh", "name": "Fresh"}, format="json"
    ),
    "members": lambda c, w: c.post(
        f"/api/projects/{w.project.slug}/members/", {"username": "newcomer"}, format="json"
    ),
    "members-list": lambda c, w: c.get(f"/api/projects/{w.project.slug}/members/"),
    "member-qualification": lambda c, w: c.patch(
        f"/api/projects/{w.project.slug}/members/member/",
        {"qualification": "waived"},
        format="json",
    ),
    "webhooks-create": lambda c, w: c.post(
        f"/api/projects/{w.project.slug}/webhooks/",
        {"url": "https://hooks.example.com/y", "events": ["judgement.created"]},
        format="json",
    ),
    "webhooks-list": lambda c, w: c.get(f"/api/projects/{w.project.slug}/webhooks/"),
    "webhook-delete": lambda c, w: c.delete(
        f"/api/projects/{w.project.slug}/webhooks/{_webhook(w)}/"
    ),
    "webhook-deliveries": lambda c, w: c.get(
        f"/api/projects/{w.project.slug}/webhooks/{_webhook(w)}/deliveries/"
    ),
    "import": lambda c, w: c.post(
        f"/api/projects/{w.project.slug}/import/",
        b'{"prompt": "p", "responses": ["a", "b"]}\n',
        content_type="application/jsonl",
    ),
    "import-job": lambda c, w: c.get(f"/api/imports/{_import_job(w).pk}/"),
    "next": lambda c, w: c.post(f"/api/projects/{w.project.slug}/next/"),
    "progress": lambda c, w: c.get(f"/api/projects/{w.project.slug}/progress/"),
    "export-trl": lambda c, w: c.get(f"/api/projects/{w.project.slug}/export/?format=trl"),
    "export-full": lambda c, w: c.get(f"/api/projects/{w.project.slug}/export/?format=full"),
    "export-kto-parquet": lambda c, w: c.get(
        f"/api/projects/{w.project.slug}/export/?format=kto&file=parquet"
    ),
    "stats": lambda c, w: c.get(f"/api/projects/{w.project.slug}/stats/"),
    "judgement-without-lease": _judge,
    "judgement-after-next": _lease_then_judge,
}

# fmt: off
API_MATRIX = {
    #  request                     anonymous outsider member staff reviewer bare
    "token":                       (200,     200,     200,   200,  200,     200),  # the login
    "projects-list":               (401,     200,     200,   200,  200,     200),
    "projects-create":             (401,     403,     403,   201,  403,     403),
    "members":                     (401,     404,     403,   201,  403,     403),
    "members-list":                (401,     404,     403,   200,  200,     403),
    "member-qualification":        (401,     404,     403,   200,  403,     403),
    "webhooks-create":             (401,     404,     403,   201,  403,     403),
    "webhooks-list":               (401,     404,     403,   200,  403,     403),
    "webhook-delete":              (401,     404,     403,   204,  403,     403),
    "webhook-deliveries":          (401,     404,     403,   200,  403,     403),
    "import":                      (401,     404,     403,   201,  403,     403),
    "import-job":                  (401,     403,     403,   200,  403,     403),  # no project
    "next":                        (401,     404,     200,   403,  403,     403),  # no member
    "progress":                    (401,     404,     200,   200,  200,     200),
    "export-trl":                  (401,     404,     403,   200,  200,     403),
    "export-full":                 (401,     404,     403,   200,  200,     403),
    "export-kto-parquet":          (401,     404,     403,   200,  200,     403),
    "stats":                       (401,     404,     200,   200,  200,     200),
    "judgement-without-lease":     (401,     404,     403,   403,  403,     403),
    "judgement-after-next":        (401,     404,     201,   403,  403,     403),  # no lease
}
# fmt: on

API_CASES = [
    pytest.param(request, caller, expected, id=f"{request}-by-{caller}-is-{expected}")
    for request, statuses in API_MATRIX.items()
    for caller, expected in zip(CALLERS, statuses, strict=True)
]


@pytest.mark.parametrize(("request_name", "caller", "expected"), API_CASES)
def test_api_answers_each_caller_with_the_status_of_the_matrix(
    world, api_client_for, request_name, caller, expected
):
    client = api_client_for(world.users[caller])
    client.raise_request_exception = False

    response = REQUESTS[request_name](client, world)

    assert response.status_code == expected, getattr(response, "data", response.content)
    if expected >= 400:
        assert response.json()["detail"]
    if expected == 401:
        assert response.has_header("WWW-Authenticate")


def test_the_matrix_covers_every_api_url():
    from core.api.urls import urlpatterns as core_urls
    from labeling.api.urls import urlpatterns

    covered = {"api-token", "api-projects", "api-members", "api-import", "api-next"}
    covered |= {"api-import-job", "api-member"}
    covered |= {"api-webhooks", "api-webhook", "api-webhook-deliveries"}
    covered |= {"api-progress", "api-export", "api-stats", "api-judgement"}
    named = {p.name for p in [*urlpatterns, *core_urls] if p.name}
    assert named - {"api-schema", "api-docs"} == covered
    assert set(REQUESTS) == set(API_MATRIX)


def test_an_unknown_api_path_is_a_json_404(api_client_for):
    response = api_client_for(None).get("/api/nothing-here/")
    assert response.status_code == 404
    assert "No API endpoint at /api/nothing-here/" in response.json()["detail"]


def test_denied_writes_leave_the_database_unchanged(world, api_client_for):
    for caller in (ANONYMOUS, OUTSIDER, MEMBER, REVIEWER, BARE):
        client = api_client_for(world.users[caller])
        for name in ("projects-create", "members", "import", "judgement-without-lease"):
            REQUESTS[name](client, world)

    assert not Project.objects.filter(slug="fresh").exists()
    assert not world.project.memberships.filter(user__username="newcomer").exists()
    assert Comparison.objects.filter(project=world.project).count() == 1
    assert not Judgement.objects.exists()


def test_token_endpoint_refuses_a_wrong_password(world, api_client_for):
    response = api_client_for().post(
        "/api/auth/token/", {"username": "member", "password": "wrong"}, format="json"
    )

    assert response.status_code == 400
    assert "token" not in response.json()


def test_project_list_shows_a_non_member_only_their_own_projects(world, api_client_for):
    slugs = {
        caller: [p["slug"] for p in api_client_for(world.users[caller]).get("/api/projects/").data]
        for caller in (OUTSIDER, MEMBER, STAFF)
    }

    assert slugs == {
        OUTSIDER: ["elsewhere"],
        MEMBER: ["secret"],
        STAFF: ["elsewhere", "secret"],
    }


def test_annotators_do_not_see_a_projects_config_and_staff_do(world, api_client_for):
    for caller, sees_config in ((MEMBER, False), (STAFF, True), (REVIEWER, True), (BARE, False)):
        rows = api_client_for(world.users[caller]).get("/api/projects/").json()
        assert rows and all(("config" in row) is sees_config for row in rows), caller


def test_non_member_gets_the_same_404_for_a_real_and_a_missing_project(world, api_client_for):
    client = api_client_for(world.users[OUTSIDER])

    real = client.get(f"/api/projects/{world.project.slug}/stats/")
    missing = client.get("/api/projects/no-such-project/stats/")

    assert real.status_code == missing.status_code == 404
    assert real.json()["detail"].replace("secret", "X") == missing.json()["detail"].replace(
        "no-such-project", "X"
    )


def test_annotator_cannot_judge_a_comparison_of_another_project(world, api_client_for):
    client = api_client_for(world.users[MEMBER])
    assert client.post(f"/api/projects/{world.project.slug}/next/").status_code == 200

    response = client.post(
        f"/api/comparisons/{world.other_comparison.pk}/judgement/", {"choice": "left"}
    )

    assert response.status_code == 404
    assert not Judgement.objects.exists()


def test_staff_who_joins_a_project_may_lease_and_judge(world, api_client_for):
    staff = world.users[STAFF]
    world.project.memberships.create(user=staff)

    response = _lease_then_judge(api_client_for(staff), world)

    assert response.status_code == 201


# --- what a member may read --------------------------------------------------------------------
def _keys(value) -> set[str]:
    """Every dict key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.fixture
def judged_world(world, make_user, make_comparison, api_client_for) -> World:
    """Two members have each judged an ordinary and a gold comparison."""
    project = world.project
    project.overlap = 2
    project.save(update_fields=["overlap"])
    second = make_user("second")
    project.memberships.create(user=second)
    gold = make_comparison(project, texts=["gold best", "gold worst"])
    gold.gold_ranking = list(gold.items.order_by("slots__position").values_list("pk", flat=True))
    gold.save(update_fields=["gold_ranking"])
    for user in (world.users[MEMBER], second):
        client = api_client_for(user)
        for _ in range(2):
            lease = client.post(f"/api/projects/{project.slug}/next/").data
            judged = client.post(
                f"/api/comparisons/{lease['id']}/judgement/", {"choice": "left"}, format="json"
            )
            assert judged.status_code == 201
    assert Judgement.objects.filter(project=project).count() == 4
    return world


def test_annotator_stats_show_only_their_own_row(judged_world, api_client_for):
    response = api_client_for(judged_world.users[MEMBER]).get("/api/projects/secret/stats/")

    assert response.status_code == 200
    assert [row["annotator"] for row in response.data["annotators"]] == ["member"]
    assert "second" not in json.dumps(response.data)


@pytest.mark.parametrize("caller", [STAFF, REVIEWER])
def test_managers_and_reviewers_see_every_annotators_stats(judged_world, api_client_for, caller):
    response = api_client_for(judged_world.users[caller]).get("/api/projects/secret/stats/")

    assert [row["annotator"] for row in response.data["annotators"]] == ["member", "second"]
    assert set(response.data["agreement"]["cohen_kappa"]) == {"member|second"}


def test_staff_without_view_judgement_see_the_counts_but_no_annotator(judged_world, api_client_for):
    response = api_client_for(judged_world.users[BARE]).get("/api/projects/secret/stats/")

    assert response.status_code == 200
    assert response.data["annotators"] == [] and response.data["agreement"]["cohen_kappa"] is None


def test_stats_never_contain_gold_answers(judged_world, api_client_for):
    for caller in (MEMBER, STAFF):
        data = api_client_for(judged_world.users[caller]).get("/api/projects/secret/stats/").data

        assert not {"gold", "gold_ranking"} & _keys(data)
        assert "gold best" not in json.dumps(data)


def test_next_never_contains_the_gold_answer(world, make_comparison, api_client_for):
    project = world.project
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    Comparison.objects.filter(project=project).delete()
    gold = make_comparison(project, texts=["best", "worst"])
    ids = list(gold.items.order_by("slots__position").values_list("pk", flat=True))
    gold.gold_ranking = ids
    gold.save(update_fields=["gold_ranking"])

    response = api_client_for(world.users[MEMBER]).post(f"/api/projects/{project.slug}/next/")

    assert response.status_code == 200
    assert response.data["id"] == gold.pk
    assert not {"gold", "gold_ranking", "is_gold", "data"} & _keys(response.json())
    assert set(response.json()) == {
        "id",
        "project",
        "prompt",
        "items",
        "lease_expires_at",
        "progress",
        "feedback",
        "criteria",
    }
    assert all(
        set(item) <= {"id", "text", "messages", "clip_url", "poster_url"}
        for item in response.data["items"]
    )


# --- the pages ---------------------------------------------------------------------------------
# fmt: off
PAGE_MATRIX = {
    #  path                  anonymous outsider member staff reviewer bare
    "/":                     (302,     200,     200,   200,  200,     200),
    "/label/secret/":        (302,     404,     200,   200,  200,     200),
    "/label/no-such/":       (302,     404,     404,   404,  404,     404),
    "/admin/":               (302,     302,     302,   200,  200,     200),
    "/api/schema/":          (200,     200,     200,   200,  200,     200),  # describes only
    "/api/docs/":            (200,     200,     200,   200,  200,     200),
}
# fmt: on

PAGE_CASES = [
    pytest.param(path, caller, expected, id=f"{path}-by-{caller}-is-{expected}")
    for path, statuses in PAGE_MATRIX.items()
    for caller, expected in zip(CALLERS, statuses, strict=True)
]


@pytest.mark.parametrize(("path", "caller", "expected"), PAGE_CASES)
def test_page_answers_each_caller_with_the_status_of_the_matrix(world, path, caller, expected):
    client = Client(raise_request_exception=False)
    if world.users[caller] is not None:
        client.force_login(world.users[caller])

    response = client.get(path)

    assert response.status_code == expected
    if expected == 302:
        login = "/admin/login/" if path.startswith("/admin/") else "/accounts/login/"
        assert response["Location"].startswith(f"{login}?next=")


def test_home_page_lists_only_the_callers_projects(world):
    client = Client()
    client.force_login(world.users[OUTSIDER])

    page = client.get("/").content.decode()

    assert "elsewhere" in page
    assert "secret" not in page


def test_login_page_is_open_to_anonymous(db):
    assert Client().get("/accounts/login/").status_code == 200
