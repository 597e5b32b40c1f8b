"""Large imports run on a worker as jobs with progress and a result; an Idempotency-Key
makes a retried import harmless, small or large."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from labeling.models import Comparison, ImportJob, Item

LINES = 30


def _jsonl(n: int = LINES, *, bad_line: int | None = None) -> bytes:
    lines = [
        json.dumps({"prompt": f"prompt {i}", "responses": [f"a{i}", f"b{i}"]}) for i in range(n)
    ]
    if bad_line is not None:
        lines[bad_line - 1] = '{"prompt": "no responses"}'
    return ("\n".join(lines) + "\n").encode()


def _post(client, project, body: bytes, *, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        f"/api/projects/{project.slug}/import/", body, content_type="application/jsonl", **headers
    )


def _wait(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
            return job
        time.sleep(0.2)
    pytest.fail(f"import job {job_id} still {job.status} after {timeout} s")


@pytest.fixture
def staff_client(make_user, api_client_for):
    return api_client_for(make_user(staff=True))


@pytest.mark.django_db
def test_a_small_import_answers_in_the_request_and_a_keyed_retry_gets_the_same_answer(
    make_project, staff_client
):
    project = make_project("words")
    first = _post(staff_client, project, _jsonl(), key="upload-1")
    assert first.status_code == 201
    assert first.json()["created_comparisons"] == LINES
    again = _post(staff_client, project, b"not even JSON", key="upload-1")  # unread
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Comparison.objects.filter(project=project).count() == LINES
    assert ImportJob.objects.get().status == ImportJob.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_rejected_import_leaves_no_job_so_a_fixed_retry_with_the_key_imports(
    make_project, staff_client
):
    project = make_project("words")
    assert _post(staff_client, project, _jsonl(bad_line=3), key="k").status_code == 400
    assert not ImportJob.objects.exists() and not Item.objects.exists()
    assert _post(staff_client, project, _jsonl(), key="k").status_code == 201


@pytest.mark.django_db
def test_following_an_import_job_is_for_staff(
    make_project, make_user, api_client_for, staff_client
):
    project = make_project("words", members=[annotator := make_user()])
    job_id = _post(staff_client, project, _jsonl()).json()["job"]
    assert staff_client.get(f"/api/imports/{job_id}/").json()["status"] == "succeeded"
    assert api_client_for(annotator).get(f"/api/imports/{job_id}/").status_code == 403
    assert staff_client.get("/api/imports/999999/").status_code == 404


@pytest.mark.worker
@override_settings(IMPORT_SYNC_MAX_BYTES=500)
def test_a_large_import_is_a_job_a_worker_runs_with_progress_and_a_result(
    celery_worker_process, make_project, staff_client
):
    project = make_project("words")
    body = _jsonl(1500)  # past PROGRESS_EVERY lines: the job reports progress on the way
    accepted = _post(staff_client, project, body, key="big-1")
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    assert accepted["Location"] == f"/api/imports/{job_id}/"
    assert accepted.json()["status"] == "queued"
    assert accepted.json()["size_bytes"] == len(body)

    job = _wait(job_id)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.progress == 1.0 and job.attempts == 1
    assert not job.upload  # the upload is deleted once the rows hold it
    followed = staff_client.get(f"/api/imports/{job_id}/").json()
    assert followed["result"]["created_comparisons"] == 1500
    assert Comparison.objects.filter(project=project).count() == 1500

    retried = _post(staff_client, project, body, key="big-1")  # the client's retry
    assert retried.status_code == 200 and retried.json()["job"] == job_id
    assert ImportJob.objects.count() == 1
    assert Comparison.objects.filter(project=project).count() == 1500


@pytest.mark.worker
@override_settings(IMPORT_SYNC_MAX_BYTES=500)
def test_a_large_import_with_a_bad_line_fails_its_job_naming_the_line_and_stores_nothing(
    celery_worker_process, make_project, staff_client
):
    project = make_project("words")
    accepted = _post(staff_client, project, _jsonl(bad_line=17))
    assert accepted.status_code == 202
    job = _wait(accepted.json()["id"])
    assert job.status == ImportJob.Status.FAILED
    assert "line 17" in job.error
    assert not Item.objects.filter(project=project).exists()
