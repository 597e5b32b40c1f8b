"""A step is owned by its attempt: a worker whose step was re-queued and claimed again
writes nothing; a step whose worker keeps dying fails its round instead of being re-sent
forever; a round whose broker message was lost is sent again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from core import storage
from labeling.models import Item
from training import services
from training.models import Run
from training.steps import StepResult


@pytest.fixture
def step(make_project):
    project = make_project(kind="trajectory", round_size=10**6)
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    return round_run.steps.get(kind=Run.Kind.FIT_REWARD_MODEL)


def _writes(project, text: str):
    return lambda: Item.objects.create(project=project, text=text)


@pytest.mark.django_db
def test_a_worker_that_lost_its_claim_commits_nothing_and_the_new_attempt_stands(step):
    project = step.project

    def second_attempt(run, progress):
        return StepResult({"attempt": 2}, _writes(project, "second"))

    def first_attempt(run, progress):
        progress(0.5)
        # The heartbeat went stale: requeue_stale_runs put the step back, another worker
        # claimed it and finished while this one was still computing.
        Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)
        assert services.execute_step(step_id=run.pk, work=second_attempt)
        return StepResult({"attempt": 1}, _writes(project, "first"))

    with pytest.raises(services.ClaimLost):
        services.execute_step(step_id=step.pk, work=first_attempt)

    step.refresh_from_db()
    assert step.status == Run.Status.SUCCEEDED and step.metrics == {"attempt": 2}
    assert step.attempts == 2
    assert list(Item.objects.filter(project=project).values_list("text", flat=True)) == ["second"]
    assert Run.objects.get(pk=step.round_id).status == Run.Status.RUNNING  # not failed


@pytest.mark.django_db
def test_progress_after_the_claim_was_taken_over_stops_the_work(step):
    reached = []

    def work(run, progress):
        Run.objects.filter(pk=run.pk).update(attempts=run.attempts + 1)  # claimed again
        progress(0.3)
        reached.append("after progress")
        return StepResult({})

    with pytest.raises(services.ClaimLost):
        services.execute_step(step_id=step.pk, work=work)
    assert reached == []
    step.refresh_from_db()
    assert step.status == Run.Status.RUNNING  # the other attempt's, left alone


@pytest.mark.django_db
def test_a_step_whose_worker_keeps_dying_fails_its_round_instead_of_being_resent(step, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue_round", lambda round_id: sent.append(round_id))
    stale = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=step.round_id).update(status=Run.Status.RUNNING, heartbeat_at=stale)
    Run.objects.filter(pk=step.pk).update(
        status=Run.Status.RUNNING, heartbeat_at=stale, attempts=services.MAX_STEP_ATTEMPTS
    )

    services.requeue_stale_runs()

    assert sent == []
    round_run = Run.objects.get(pk=step.round_id)
    assert round_run.status == Run.Status.FAILED
    assert "stopped reporting 3 times" in round_run.error
    assert set(round_run.steps.values_list("status", flat=True)) == {Run.Status.FAILED}


@pytest.mark.django_db
def test_a_stale_step_with_attempts_left_is_sent_again(step, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue_round", lambda round_id: sent.append(round_id) or 1)
    stale = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=step.round_id).update(status=Run.Status.RUNNING, heartbeat_at=stale)
    Run.objects.filter(pk=step.pk).update(status=Run.Status.RUNNING, attempts=1)

    assert services.requeue_stale_runs() == 1
    assert sent == [step.round_id]
    assert Run.objects.get(pk=step.pk).status == Run.Status.QUEUED


@pytest.mark.django_db
def test_a_round_queued_long_after_it_was_sent_lost_its_message_and_is_sent_again(
    step, monkeypatch
):
    sent = []
    monkeypatch.setattr(services, "enqueue_round", lambda round_id: sent.append(round_id) or 1)
    Run.objects.filter(pk=step.round_id).update(celery_task_id="lost-message-id")
    assert services.requeue_stale_runs() == 0  # sent a moment ago: it may just be waiting
    long_ago = timezone.now() - services.RESEND_QUEUED_AFTER - timedelta(minutes=1)
    Run.objects.filter(pk=step.round_id).update(created_at=long_ago)
    assert services.requeue_stale_runs() == 1
    assert sent == [step.round_id]


def _stores(project, text: str) -> tuple[str, StepResult]:
    """A file stored during the work, and the result whose commit names it in an Item."""
    name = storage.save(f"segments/{project.slug}/{text}.npz", ContentFile(text.encode()))
    return name, StepResult({}, lambda: Item.objects.create(project=project, payload=name))


@pytest.mark.django_db
def test_the_files_of_an_attempt_that_lost_its_claim_are_deleted_and_the_winners_kept(
    step, media_root
):
    project, names = step.project, {}

    def second_attempt(run, progress):
        names["second"], result = _stores(project, "second")
        return result

    def first_attempt(run, progress):
        names["first"], result = _stores(project, "first")
        Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)
        assert services.execute_step(step_id=run.pk, work=second_attempt)
        return result

    with pytest.raises(services.ClaimLost):
        services.execute_step(step_id=step.pk, work=first_attempt)

    assert not default_storage.exists(names["first"])
    assert default_storage.exists(names["second"])
    assert Item.objects.get(project=project).payload.name == names["second"]


@pytest.mark.django_db
def test_the_files_of_a_failed_step_are_deleted(step, media_root):
    stored = []

    def work(run, progress):
        stored.append(_stores(step.project, "doomed")[0])
        raise RuntimeError("the trainer crashed")

    with pytest.raises(RuntimeError):
        services.execute_step(step_id=step.pk, work=work)

    assert stored and not default_storage.exists(stored[0])
    step.refresh_from_db()
    assert step.status == Run.Status.FAILED
