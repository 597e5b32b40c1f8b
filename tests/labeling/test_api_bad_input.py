"""Bad input anywhere in the API is answered with a 4xx and a JSON body that says what is
wrong (``detail`` or field errors), never with a 500, and stores nothing."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from labeling.config import MAX_K
from labeling.models import (
    Comparison,
    ComparisonItem,
    ImportJob,
    Item,
    Judgement,
    Membership,
    Project,
)

HUGE = 10**30


@pytest.fixture
def staff(make_user):
    return make_user("boss", staff=True)


@pytest.fixture
def annotator(make_user):
    return make_user("annie")


@pytest.fixture
def project(make_project, annotator):
    return make_project("words", members=[annotator])


@pytest.fixture
def client_for(api_client_for):
    """An API client on which a server error is a 500 response, not a raised exception."""

    def make(user):
        client = api_client_for(user)
        client.raise_request_exception = False
        return client

    return make


def assert_explained_4xx(response, status: int = 400) -> dict | list:
    """The response has ``status`` and a JSON body: a ``detail`` or field errors."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body, "an error needs an explanation"
    return body


def table_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Project, Membership, Item, Comparison, ComparisonItem, Judgement)
    }


# --- judgements ------------------------------------------------------------------------------
@pytest.fixture
def leased_pair(project, annotator, make_comparison, client_for):
    """A pair the annotator holds a lease on, and the annotator's client."""
    comparison = make_comparison(project)
    client = client_for(annotator)
    assert client.post(f"/api/projects/{project.slug}/next/").data["id"] == comparison.pk
    return comparison, client


@pytest.fixture
def leased_triple(project, annotator, make_comparison, client_for):
    comparison = make_comparison(project, k=3)
    client = client_for(annotator)
    lease = client.post(f"/api/projects/{project.slug}/next/").data
    assert lease["id"] == comparison.pk
    return comparison, client, [item["id"] for item in lease["items"]]


def _judgement_url(comparison) -> str:
    return f"/api/comparisons/{comparison.pk}/judgement/"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"choice": "left"', id="truncated-json"),
        pytest.param(b"{'choice': 'left'}", id="single-quotes"),
        pytest.param(b"choice=left", id="not-json"),
        pytest.param(b'{"choice": NaN}', id="nan"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    ],
)
def test_malformed_json_judgement_is_400_with_detail(leased_pair, body):
    comparison, client = leased_pair

    response = client.post(_judgement_url(comparison), body, content_type="application/json")

    assert "detail" in assert_explained_4xx(response)
    assert not Judgement.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"choice": 5}, "choice", id="choice-is-a-number"),
        pytest.param({"choice": "maybe"}, "choice", id="unknown-choice"),
        pytest.param({"choice": None}, "choice", id="choice-is-null"),
        pytest.param({"choice": ["left"]}, "choice", id="choice-is-a-list"),
        pytest.param({"ranking": "abc"}, "ranking", id="ranking-is-a-string"),
        pytest.param({"ranking": {"a": 1}}, "ranking", id="ranking-is-an-object"),
        pytest.param({"ranking": ["a", "b"]}, "ranking", id="ranking-of-strings"),
        pytest.param({"ranking": [1]}, "ranking", id="ranking-too-short"),
        pytest.param({"ranking": [0, -1]}, "ranking", id="ranking-of-non-positive-ids"),
        pytest.param({"ranking": list(range(1, MAX_K + 2))}, "ranking", id="ranking-over-max-k"),
        pytest.param({"choice": "left", "time_spent_ms": -1}, "time_spent_ms", id="negative-time"),
        pytest.param({"choice": "left", "time_spent_ms": HUGE}, "time_spent_ms", id="huge-time"),
        pytest.param({"choice": "left", "time_spent_ms": 1.5}, "time_spent_ms", id="float-time"),
        pytest.param({"choice": "left", "time_spent_ms": "ab"}, "time_spent_ms", id="text-time"),
    ],
)
def test_judgement_with_a_wrongly_typed_field_is_400_naming_the_field(leased_pair, body, field):
    comparison, client = leased_pair

    response = client.post(_judgement_url(comparison), body, format="json")

    assert field in assert_explained_4xx(response)
    assert not Judgement.objects.exists()


def test_judgement_with_a_huge_float_time_is_400(leased_pair):
    comparison, client = leased_pair

    response = client.post(
        _judgement_url(comparison),
        b'{"choice": "left", "time_spent_ms": 1e400}',
        content_type="application/json",
    )

    assert_explained_4xx(response)
    assert not Judgement.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="neither-choice-nor-ranking"),
        pytest.param({"time_spent_ms": 10}, id="only-time"),
        pytest.param({"choice": "left", "ranking": [1, 2]}, id="both-choice-and-ranking"),
    ],
)
def test_judgement_needs_exactly_one_of_choice_and_ranking(leased_pair, body):
    comparison, client = leased_pair

    response = client.post(_judgement_url(comparison), body, format="json")

    errors = assert_explained_4xx(response)
    assert "exactly one of 'choice' and 'ranking'" in json.dumps(errors)
    assert not Judgement.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="empty-list"),
        pytest.param(["left"], id="list"),
        pytest.param(3, id="int"),
    ],
)
def test_judgement_body_that_is_not_an_object_is_400(leased_pair, body):
    comparison, client = leased_pair

    response = client.post(_judgement_url(comparison), body, format="json")

    assert_explained_4xx(response)
    assert not Judgement.objects.exists()


def test_ranking_with_a_duplicate_id_is_400_listing_the_expected_ids(leased_triple):
    comparison, client, shown = leased_triple

    response = client.post(
        _judgement_url(comparison), {"ranking": [shown[0], shown[0], shown[1]]}, format="json"
    )

    assert str(sorted(shown)) in assert_explained_4xx(response)["detail"]
    assert not Judgement.objects.exists()


def test_ranking_with_an_id_of_another_comparison_is_400(leased_triple, make_comparison):
    comparison, client, shown = leased_triple
    foreign = make_comparison(comparison.project).items.first().pk

    response = client.post(
        _judgement_url(comparison), {"ranking": [shown[0], shown[1], foreign]}, format="json"
    )

    assert "ranking must list each" in assert_explained_4xx(response)["detail"]
    assert not Judgement.objects.exists()


@pytest.mark.parametrize(
    "ranking",
    [
        pytest.param("missing-one", id="missing-an-id"),
        pytest.param("huge-ids", id="huge-ids"),
    ],
)
def test_ranking_that_is_not_a_permutation_of_the_items_is_400(leased_triple, ranking):
    comparison, client, shown = leased_triple
    body = shown[:2] if ranking == "missing-one" else [HUGE, HUGE + 1, HUGE + 2]

    response = client.post(_judgement_url(comparison), {"ranking": body}, format="json")

    assert_explained_4xx(response)
    assert not Judgement.objects.exists()


def test_pair_choice_on_a_ranking_task_is_400_saying_to_send_a_ranking(leased_triple):
    comparison, client, _ = leased_triple

    response = client.post(_judgement_url(comparison), {"choice": "left"}, format="json")

    assert "send 'ranking'" in assert_explained_4xx(response)["detail"]


def test_bad_judgement_leaves_the_lease_usable(leased_pair):
    comparison, client = leased_pair
    client.post(_judgement_url(comparison), {"choice": "maybe"}, format="json")

    response = client.post(_judgement_url(comparison), {"choice": "left"}, format="json")

    assert response.status_code == 201


def test_a_different_answer_to_a_judged_comparison_is_409(leased_pair):
    comparison, client = leased_pair
    first = client.post(_judgement_url(comparison), {"choice": "left"}, format="json")
    assert first.status_code == 201

    response = client.post(_judgement_url(comparison), {"choice": "right"}, format="json")

    assert "cannot be changed" in assert_explained_4xx(response, 409)["detail"]
    assert list(Judgement.objects.values_list("choice", flat=True)) == ["left"]


def test_an_identical_replay_is_200_and_stores_one_row(leased_pair):
    comparison, client = leased_pair
    first = client.post(_judgement_url(comparison), {"choice": "left"}, format="json")

    replay = client.post(_judgement_url(comparison), {"choice": "left"}, format="json")

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.data["id"] == first.data["id"]
    assert Judgement.objects.count() == 1


@pytest.mark.parametrize(
    "comparison_id", [pytest.param(987654321, id="missing"), pytest.param(HUGE, id="beyond-bigint")]
)
def test_judgement_of_a_missing_comparison_is_404(annotator, client_for, comparison_id):
    response = client_for(annotator).post(
        f"/api/comparisons/{comparison_id}/judgement/", {"choice": "left"}, format="json"
    )

    assert "detail" in assert_explained_4xx(response, 404)


# --- project create ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"slug": "bad slug!", "name": "x"}, "slug", id="slug-with-spaces"),
        pytest.param({"slug": "", "name": "x"}, "slug", id="empty-slug"),
        pytest.param({"slug": "s" * 51, "name": "x"}, "slug", id="slug-too-long"),
        pytest.param({"name": "x"}, "slug", id="no-slug"),
        pytest.param({"slug": "ok"}, "name", id="no-name"),
        pytest.param({"slug": "ok", "name": "x" * 201}, "name", id="name-too-long"),
        pytest.param({"slug": "ok", "name": "x", "kind": "video"}, "kind", id="unknown-kind"),
        pytest.param({"slug": "ok", "name": "x", "kind": 3}, "kind", id="kind-is-a-number"),
        pytest.param({"slug": "ok", "name": "x", "overlap": 0}, "overlap", id="overlap-zero"),
        pytest.param({"slug": "ok", "name": "x", "overlap": HUGE}, "overlap", id="overlap-huge"),
        pytest.param({"slug": "ok", "name": "x", "round_size": HUGE}, "round_size", id="rs-huge"),
        pytest.param({"slug": "ok", "name": "x", "round_size": "x"}, "round_size", id="rs-text"),
        pytest.param({"slug": "ok", "name": "x", "gold_rate": 1.5}, "gold_rate", id="gold-rate"),
        pytest.param({"slug": "ok", "name": "x", "lease_seconds": 1}, "lease_seconds", id="lease"),
        pytest.param({"slug": "ok", "name": "x", "config": [1]}, "config", id="config-not-object"),
        pytest.param({"slug": "ok", "name": "x", "config": "k=3"}, "config", id="config-string"),
    ],
)
def test_project_create_with_a_bad_field_is_400_naming_the_field(staff, client_for, body, field):
    before = table_counts()

    response = client_for(staff).post("/api/projects/", body, format="json")

    assert field in assert_explained_4xx(response)
    assert table_counts() == before


@pytest.mark.parametrize(
    ("kind", "config", "key"),
    [
        pytest.param("text", {"nope": 1}, "nope", id="unknown-text-key"),
        pytest.param("text", {"k": 1}, "k", id="text-k-below-2"),
        pytest.param("text", {"k": MAX_K + 1}, "k", id="text-k-over-max"),
        pytest.param("text", {"k": "3"}, "k", id="text-k-a-string"),
        pytest.param("text", {"temperature": 0}, "temperature", id="zero-temperature"),
        pytest.param("text", {"algorithm": "sft"}, "algorithm", id="unknown-text-algorithm"),
        pytest.param("text", {"prompts": "hello"}, "prompts", id="prompts-a-string"),
        pytest.param("text", {"eval_prompts": [""]}, "eval_prompts", id="an-empty-eval-prompt"),
        pytest.param("text", {"model_dir": "/no/such/dir"}, "model_dir", id="missing-model"),
        pytest.param("trajectory", {"env_id": "NoSuchEnv-v0"}, "env_id", id="unknown-env"),
        pytest.param("trajectory", {"k": 3}, "k", id="text-key-on-trajectory"),
        pytest.param("trajectory", {"render_clips": "yes"}, "render_clips", id="not-a-bool"),
        pytest.param("trajectory", {"seed": -1}, "seed", id="negative-seed"),
        pytest.param("trajectory", {"eval_episodes": 0}, "eval_episodes", id="no-eval-episodes"),
        pytest.param("trajectory", {"reward_scale": 0}, "reward_scale", id="zero-reward-scale"),
        pytest.param("trajectory", {"reward_scale": "1"}, "reward_scale", id="reward-scale-str"),
        pytest.param("trajectory", {"ppo": 3}, "ppo", id="hyperparameters-not-an-object"),
        pytest.param("trajectory", {"ppo": {"lr": 1e-3}}, "ppo.lr", id="unknown-hyperparameter"),
        pytest.param(
            "trajectory", {"ppo": {"learning_rate": -1}}, "ppo.learning_rate", id="negative-lr"
        ),
        pytest.param("trajectory", {"a2c": {"num_envs": 0}}, "a2c.num_envs", id="a2c-no-envs"),
    ],
)
def test_project_create_with_a_bad_config_is_400_naming_the_key(
    staff, client_for, kind, config, key
):
    body = {"slug": "configured", "name": "x", "kind": kind, "config": config}

    response = client_for(staff).post("/api/projects/", body, format="json")

    errors = assert_explained_4xx(response)
    assert key in errors["config"], errors
    assert not Project.objects.filter(slug="configured").exists()


def test_project_create_with_a_duplicate_slug_is_400(staff, client_for, project):
    before = table_counts()

    response = client_for(staff).post(
        "/api/projects/", {"slug": "words", "name": "x"}, format="json"
    )

    assert "slug" in assert_explained_4xx(response)
    assert table_counts() == before


def test_project_create_with_malformed_json_is_400(staff, client_for):
    response = client_for(staff).post(
        "/api/projects/", b'{"slug": "x",', content_type="application/json"
    )

    assert "detail" in assert_explained_4xx(response)
    assert not Project.objects.exists()


def test_project_create_in_an_unsupported_media_type_is_415(staff, client_for):
    response = client_for(staff).post(
        "/api/projects/", b"<slug>x</slug>", content_type="application/xml"
    )

    assert "detail" in assert_explained_4xx(response, 415)


# --- members -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"username": "nobody"}, id="unknown-username"),
        pytest.param({"username": ""}, id="empty-username"),
        pytest.param({}, id="no-username"),
        pytest.param({"username": {"a": 1}}, id="username-an-object"),
        pytest.param({"username": "u" * 151}, id="username-too-long"),
    ],
)
def test_adding_a_bad_member_is_400_naming_username(staff, client_for, project, body):
    before = table_counts()

    response = client_for(staff).post(f"/api/projects/{project.slug}/members/", body, format="json")

    assert "username" in assert_explained_4xx(response)
    assert table_counts() == before


def test_unknown_member_error_names_the_username(staff, client_for, project):
    response = client_for(staff).post(
        f"/api/projects/{project.slug}/members/", {"username": "nobody"}, format="json"
    )

    assert "nobody" in str(assert_explained_4xx(response)["username"])


def test_adding_a_member_with_malformed_json_is_400(staff, client_for, project):
    response = client_for(staff).post(
        f"/api/projects/{project.slug}/members/", b"{username", content_type="application/json"
    )

    assert "detail" in assert_explained_4xx(response)


# --- import ------------------------------------------------------------------------------------
GOOD_LINE = b'{"prompt": "p", "responses": ["a", "b"]}'
GOOD_PAIR = b'{"prompt": "p", "chosen": "yes", "rejected": "no"}'


def _import(client, project, body: bytes, content_type: str = "application/jsonl", **headers):
    return client.post(
        f"/api/projects/{project.slug}/import/", body, content_type=content_type, **headers
    )


@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param(b'{"prompt": "p", "responses": ["a", "b"]', id="truncated-json"),
        pytest.param(b"\xff\xfe not utf-8", id="not-utf8"),
        pytest.param(b'["p", "a", "b"]', id="not-an-object"),
        pytest.param(b'{"responses": ["a", "b"]}', id="no-prompt"),
        pytest.param(b'{"prompt": 3, "responses": ["a", "b"]}', id="prompt-a-number"),
        pytest.param(b'{"prompt": "p", "responses": ["a"]}', id="one-response"),
        pytest.param(b'{"prompt": "p", "responses": "ab"}', id="responses-a-string"),
        pytest.param(b'{"prompt": "p", "responses": ["a", 2]}', id="response-a-number"),
        pytest.param(b'{"prompt": "p", "responses": ["a", "a"]}', id="duplicate-responses"),
        pytest.param(b'{"prompt": "p", "responses": ["a", "b"], "x": 1}', id="unexpected-key"),
        pytest.param(b'{"prompt": "p", "chosen": "a"}', id="chosen-without-rejected"),
        pytest.param(b'{"prompt": "p", "chosen": "a", "rejected": "a"}', id="chosen-is-rejected"),
        pytest.param(b'{"prompt": "p", "text": "a"}', id="neither-shape"),
        pytest.param(
            json.dumps({"prompt": "p", "responses": [str(i) for i in range(MAX_K + 1)]}).encode(),
            id="k-over-max",
        ),
        pytest.param(
            json.dumps({"prompt": "p", "responses": ["a", "b" * 50_001]}).encode(),
            id="response-too-long",
        ),
    ],
)
def test_import_with_a_bad_line_is_400_naming_the_line_and_stores_nothing(
    staff, client_for, project, bad_line
):
    body = b"\n".join([GOOD_LINE, GOOD_PAIR, b"", bad_line, GOOD_LINE]) + b"\n"
    before = table_counts()

    response = _import(client_for(staff), project, body)

    detail = assert_explained_4xx(response)["detail"]
    assert detail.startswith("line 4: ")
    assert "Nothing from this file was stored" in detail
    assert table_counts() == before


def test_import_of_k_over_the_limit_says_the_limit(staff, client_for, project):
    line = json.dumps({"prompt": "p", "responses": [str(i) for i in range(MAX_K + 1)]})

    response = _import(client_for(staff), project, line.encode())

    assert f"2 to {MAX_K}" in assert_explained_4xx(response)["detail"]


def test_import_of_an_empty_body_is_400(staff, client_for, project):
    before = table_counts()

    response = _import(client_for(staff), project, b"")

    assert "detail" in assert_explained_4xx(response)
    assert table_counts() == before


def test_import_of_only_blank_lines_is_400_saying_there_are_no_lines(staff, client_for, project):
    before = table_counts()

    response = _import(client_for(staff), project, b"\n  \n\t\n")

    assert "no JSON lines" in assert_explained_4xx(response)["detail"]
    assert table_counts() == before


@override_settings(IMPORT_MAX_BYTES=100)
def test_import_over_the_size_limit_is_413_naming_the_limit(staff, client_for, project):
    body = b"\n".join([GOOD_LINE] * 5)
    assert len(body) > 100
    before = table_counts()

    response = _import(client_for(staff), project, body)

    assert "limit is 100 bytes" in assert_explained_4xx(response, 413)["detail"]
    assert table_counts() == before


@override_settings(IMPORT_MAX_BYTES=100)
def test_multipart_import_over_the_size_limit_is_413(staff, client_for, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("big.jsonl", b"\n".join([GOOD_LINE] * 5))

    response = client_for(staff).post(
        f"/api/projects/{project.slug}/import/", {"file": upload}, format="multipart"
    )

    assert "100 bytes" in assert_explained_4xx(response, 413)["detail"]
    assert not Item.objects.exists()


def test_multipart_import_without_a_file_field_is_400(staff, client_for, project):
    response = client_for(staff).post(
        f"/api/projects/{project.slug}/import/", {"other": "x"}, format="multipart"
    )

    assert "'file'" in assert_explained_4xx(response)["detail"]


def test_import_as_json_media_type_is_415(staff, client_for, project):
    response = _import(client_for(staff), project, GOOD_LINE, content_type="application/json")

    assert "detail" in assert_explained_4xx(response, 415)


def test_import_into_a_trajectory_project_is_400(staff, client_for, make_project):
    trajectory = make_project("cartpole", kind=Project.Kind.TRAJECTORY)

    response = _import(client_for(staff), trajectory, GOOD_LINE)

    assert "text projects" in assert_explained_4xx(response)["detail"]
    assert not Item.objects.exists()


def test_a_good_import_after_a_rejected_one_stores_every_line(staff, client_for, project):
    client = client_for(staff)
    _import(client, project, GOOD_LINE + b"\n{oops")

    response = _import(client, project, GOOD_LINE + b"\n" + GOOD_PAIR)

    assert response.status_code == 201
    assert response.data == {
        "job": ImportJob.objects.get().pk,  # the rejected file left no job
        "created_items": 4,
        "created_comparisons": 2,
        "created_judgements": 1,
        "skipped_duplicates": 0,  # the rejected file stored nothing to be a duplicate of
    }


# --- export and query strings ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["nope", "", "TRL", "json"])
def test_export_in_an_unknown_format_is_400(staff, client_for, project, fmt):
    response = client_for(staff).get(f"/api/projects/{project.slug}/export/?format={fmt}")

    assert "format: must be trl, kto or full" in assert_explained_4xx(response)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/api/projects/words/next/", 405),
        ("delete", "/api/projects/", 405),
        ("put", "/api/projects/words/stats/", 405),
        ("get", "/api/comparisons/1/judgement/", 405),
    ],
)
def test_wrong_http_method_is_405(staff, client_for, project, method, path, allowed):
    response = getattr(client_for(staff), method)(path)

    assert "detail" in assert_explained_4xx(response, allowed)


def test_token_request_with_malformed_json_is_400(client_for):
    response = client_for(None).post(
        "/api/auth/token/", b'{"username": ', content_type="application/json"
    )

    assert "detail" in assert_explained_4xx(response)


def test_token_request_without_a_password_is_400_naming_the_field(client_for, annotator):
    response = client_for(None).post("/api/auth/token/", {"username": "annie"}, format="json")

    assert "password" in assert_explained_4xx(response)


# --- NUL characters: PostgreSQL refuses them in text and jsonb, so the API must first ------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        pytest.param("/api/projects/", {"slug": "n", "name": "a\x00b"}, "name", id="project-name"),
        pytest.param(
            "/api/projects/",
            {"slug": "n", "name": "x", "instructions": "a\x00b"},
            "instructions",
            id="project-instructions",
        ),
        pytest.param(
            "/api/projects/",
            {"slug": "n", "name": "x", "config": {"prompts": ["a\x00b"]}},
            "config",
            id="project-config-value",
        ),
        pytest.param(
            "/api/projects/words/members/", {"username": "a\x00b"}, "username", id="member"
        ),
        pytest.param(
            "/api/auth/token/", {"username": "a\x00b", "password": "pw"}, "username", id="token"
        ),
    ],
)
def test_null_character_in_a_field_is_400_naming_the_field(
    staff, client_for, project, path, body, field
):
    before = table_counts()

    response = client_for(staff).post(path, body, format="json")

    assert field in assert_explained_4xx(response)
    assert table_counts() == before


def test_import_with_a_null_character_is_400_naming_the_line(staff, client_for, project):
    body = GOOD_LINE + b'\n{"prompt": "p\\u0000", "responses": ["a", "b"]}\n'
    before = table_counts()

    response = _import(client_for(staff), project, body)

    assert assert_explained_4xx(response)["detail"].startswith("line 2: ")
    assert table_counts() == before


def test_import_with_a_nonsense_content_length_header_is_4xx(staff, client_for, project):
    response = _import(client_for(staff), project, GOOD_LINE, CONTENT_LENGTH="abc")

    assert "detail" in assert_explained_4xx(response)
    assert not Item.objects.exists()


# --- bodies that used to be 500s --------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested deeper", id="deep-json"),
        pytest.param(
            b'{"slug": "x", "name": "' + b"[" * 10 + b'", "overlap": 1' + b"9" * 5000 + b"}",
            "parse error",
            id="5000-digit-integer",
        ),
        pytest.param(b'{"slug": "x", "name": "a\\ud800b"}', "surrogate", id="lone-surrogate"),
        pytest.param(
            b'{"slug": "x", "name": "x", "config": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
            "nested deeper",
            id="deep-config",
        ),
    ],
)
def test_bodies_the_json_parser_used_to_fail_on_are_400(staff, client_for, body, says):
    response = client_for(staff).post("/api/projects/", body, content_type="application/json")
    assert says in assert_explained_4xx(response)["detail"]
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        pytest.param(
            b'{"prompt": "p", "responses": ["a", "b"], "n": 1' + b"9" * 5000 + b"}",
            "not valid JSON",
            id="5000-digit-integer",
        ),
        pytest.param(
            b'{"prompt": "p\\udc00", "responses": ["a", "b"]}', "surrogate", id="surrogate"
        ),
        pytest.param(b"[" * 100_000, "JSON", id="deep"),
    ],
)
def test_import_lines_that_used_to_be_500s_are_400_naming_the_line(
    staff, client_for, project, line, says
):
    response = _import(client_for(staff), project, GOOD_LINE + b"\n" + line)
    detail = assert_explained_4xx(response)["detail"]
    assert detail.startswith("line 2: ") and says in detail
    assert not Item.objects.exists()


def test_a_slug_taken_by_a_concurrent_create_is_invalid_input_not_an_integrity_error(db):
    from core.errors import InvalidInput
    from labeling import services

    # What the second of two simultaneous creates meets once the serializer's uniqueness
    # check has passed for both: the first one's committed row.
    services.create_project(slug="same", name="a")
    with pytest.raises(InvalidInput, match="exists"):
        services.create_project(slug="same", name="b")
    assert Project.objects.filter(slug="same").count() == 1
