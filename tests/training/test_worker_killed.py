"""A worker killed with SIGKILL in the middle of a round: the round is not lost. The
periodic job sends the stale round again and a fresh worker completes it; the step that
had already succeeded is not run twice."""

import signal
import time
from datetime import timedelta

import pytest

from tests.training.rounds import judge_all, wait_until_finished
from training import services
from training.models import Policy, RewardModel, Run

CONFIG = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "algorithm": "reinforce",
    "env_steps_per_round": 800,
    "comparisons_per_round": 6,
    "ensemble_size": 2,
    "render_clips": False,
}


def _wait(predicate, timeout=180, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.worker
def test_a_round_survives_its_worker_being_killed_mid_step(celery_worker_process, make_project):
    project = make_project(kind="trajectory", config=CONFIG, round_size=10_000)
    first = services.start_round(project=project, trigger="test")
    assert wait_until_finished(first, timeout=180).status == "succeeded"
    judge_all(project)

    # A policy step long enough to be killed in the middle of.
    project.config = {**CONFIG, "env_steps_per_round": 2_000_000}
    project.save()
    second = services.start_round(project=project, trigger="test")
    improve = second.steps.get(kind="improve_policy")
    _wait(
        lambda: Run.objects.filter(pk=improve.pk, status="running", progress__gt=0).exists(),
        what="the policy step to be under way",
    )
    celery_worker_process.process.send_signal(signal.SIGKILL)
    celery_worker_process.process.wait(timeout=10)
    assert Run.objects.get(pk=second.pk).status == "running"  # the worker died holding it

    project.config = CONFIG  # the retry is short
    project.save()
    celery_worker_process.restart()
    assert services.requeue_stale_runs(stale_after=timedelta(0)) == 1
    second = wait_until_finished(second, timeout=180)
    assert second.status == "succeeded", second.error
    steps = {s.kind: s for s in second.steps.all()}
    assert steps["fit_reward_model"].attempts == 1  # succeeded before the kill: not rerun
    assert steps["improve_policy"].attempts == 2
    assert RewardModel.objects.filter(project=project).count() == 1
    assert Policy.objects.filter(project=project).order_by("-version").first().version == 1
    assert not Run.objects.filter(project=project, kind="round", status__in=Run.ACTIVE).exists()
