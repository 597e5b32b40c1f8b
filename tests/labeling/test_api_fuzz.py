"""Schemathesis against the project's own OpenAPI schema, as staff and as an annotator:
no request it generates gets a server error, and every answer (status, content type,
headers, body) is one the schema documents. A bounded, deterministic number of examples
runs in the suite; raise FUZZ_EXAMPLES for a longer run by hand."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labeling import services

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
# No server error; every status, content type, header and body as the schema documents it.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STATUSES: dict[int, int] = {}  # what the generated requests got, for a look by hand


@pytest.fixture
def api_schema(db):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from rlhf_platform.wsgi import application

    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _token(*, staff: bool, make_user, make_project, make_comparison) -> str:
    user = make_user(staff=staff)
    project = make_project("fuzz", members=[user])
    for _ in range(3):
        make_comparison(project)
    services.assign_next_comparison(annotator=user, project=project)
    return Token.objects.create(user=user).key


@pytest.fixture
def staff_token(make_user, make_project, make_comparison):
    return _token(
        staff=True, make_user=make_user, make_project=make_project, make_comparison=make_comparison
    )


@pytest.fixture
def annotator_token(make_user, make_project, make_comparison):
    return _token(
        staff=False, make_user=make_user, make_project=make_project, make_comparison=make_comparison
    )


def _fuzz_every_operation(api_schema, token: str) -> list[str]:
    """Run EXAMPLES generated requests against every operation; return the server errors."""
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call(headers={"Authorization": f"Token {token}"})
            STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                failures.extend(
                    f"{case.operation.label}: {response.status_code}: {failure.title}: "
                    f"{response.text[:200]}"
                    for failure in group.exceptions
                )

        run()
    print("answers so far, by status:", dict(sorted(STATUSES.items())))  # shown with -s
    return failures


def test_every_answer_to_staff_is_documented_and_no_server_error(api_schema, staff_token):
    assert _fuzz_every_operation(api_schema, staff_token) == []


def test_every_answer_to_an_annotator_is_documented_and_no_server_error(
    api_schema, annotator_token
):
    assert _fuzz_every_operation(api_schema, annotator_token) == []
