"""Bodies past REQUEST_MAX_BYTES are refused with 413 before anything parses them, on
every endpoint but the import, which streams its body under IMPORT_MAX_BYTES."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from labeling.models import Item, Project

BIG_JSON = json.dumps({"username": "x", "password": "y", "pad": "z" * (2 * 1024 * 1024)})


@pytest.mark.django_db
def test_an_anonymous_big_json_body_is_413_before_the_token_endpoint_parses_it():
    response = APIClient().post("/api/auth/token/", BIG_JSON, content_type="application/json")
    assert response.status_code == 413
    assert f"the limit is {1024 * 1024} bytes" in response.json()["detail"]


@pytest.mark.django_db
def test_a_staff_members_big_body_is_413_too(make_user, api_client_for):
    client = api_client_for(make_user(staff=True))
    response = client.post("/api/projects/", BIG_JSON, content_type="application/json")
    assert response.status_code == 413
    assert not Project.objects.exists()


@pytest.mark.django_db
@override_settings(REQUEST_MAX_BYTES=1000)
def test_the_import_endpoint_takes_bodies_past_the_general_limit(
    make_user, make_project, api_client_for
):
    staff = make_user(staff=True)
    project = make_project("words")
    lines = [json.dumps({"prompt": f"p{i}", "responses": ["a", "b"]}) for i in range(100)]
    body = "\n".join(lines).encode()
    assert len(body) > 1000

    client = api_client_for(staff)
    imported = client.post(
        f"/api/projects/{project.slug}/import/", body, content_type="application/jsonl"
    )
    assert imported.status_code == 201, imported.json()
    assert Item.objects.filter(project=project).count() == 200
    created = client.post("/api/projects/", body, content_type="application/json")
    assert created.status_code == 413


@pytest.mark.django_db
def test_a_content_length_that_is_no_number_is_400():
    response = APIClient().post(
        "/api/auth/token/", "{}", content_type="application/json", CONTENT_LENGTH="lots"
    )
    assert response.status_code == 400
    assert "Content-Length" in response.json()["detail"]
