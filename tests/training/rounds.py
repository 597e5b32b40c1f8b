"""Helpers for tests that run rounds: wait for a worker, judge with a teacher."""

import time

import pytest

from training.ml.teachers import make_teacher
from training.models import Run
from training.simulation import simulate_judgements


def wait_until_finished(round_run: Run, *, timeout: float) -> Run:
    """The round once it is no longer queued or running; the test fails after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        round_run.refresh_from_db()
        if round_run.status not in Run.ACTIVE:
            return round_run
        time.sleep(0.3)
    pytest.fail(f"round {round_run.number} still {round_run.status} after {timeout} s")


def judge_all(project, *, seed: int = 0) -> int:
    """A rational teacher judges every comparison left for it; returns how many."""
    return simulate_judgements(
        project=project,
        teacher_name="rational",
        teacher=make_teacher("rational"),
        limit=None,
        seed=seed,
    )


def round_via_api(client, project, *, timeout: float = 300) -> Run:
    """Start a round through the API, wait for the worker, and require that it succeeded."""
    response = client.post(f"/api/projects/{project.slug}/rounds/")
    assert response.status_code == 202, response.json()
    round_run = wait_until_finished(Run.objects.get(pk=response.json()["id"]), timeout=timeout)
    assert round_run.status == "succeeded", round_run.error
    return round_run
