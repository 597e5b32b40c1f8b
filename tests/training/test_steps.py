"""The steps of a round are declared once (training.steps.STEPS): the Run rows, the Celery
chain, the routes, the tasks and the in-process runner all follow that declaration."""

from __future__ import annotations

import pytest
from celery import current_app

from training import services, steps, tasks
from training.models import Run


def test_each_step_is_routed_to_its_declared_queue_after_the_prefix(settings):
    settings.CELERY_QUEUE_PREFIX = "p-"
    for step in steps.STEPS:
        assert steps.route_task(step.task, (), {}, {}) == {"queue": "p-" + step.queue}
    assert steps.route_task("labeling.release_expired_leases", (), {}, {}) is None
    assert current_app.conf.task_routes == ["training.steps.route_task"]


def test_each_step_has_a_task_of_its_declared_name():
    assert [tasks.STEP_TASKS[step.kind].name for step in steps.STEPS] == [
        step.task for step in steps.STEPS
    ]
    assert {step.kind for step in steps.STEPS} == set(Run.Kind.values) - {Run.Kind.ROUND}


@pytest.mark.django_db
def test_a_round_has_one_run_per_step_and_its_chain_reaches_the_broker_on_the_steps_queues(
    make_project, settings
):
    import uuid

    from rlhf_platform.celery import app

    prefix = f"test-steps-{uuid.uuid4().hex[:8]}-"
    settings.CELERY_QUEUE_PREFIX = prefix  # queues of this test's own on the real broker
    project = make_project(kind="trajectory", round_size=10_000)
    round_run = services.start_round(project=project, trigger="test", enqueue=False)
    assert services.enqueue_round(round_run.pk)
    runs = {run.kind: run.pk for run in round_run.steps.all()}
    assert set(runs) == {step.kind for step in steps.STEPS}

    first, *rest = steps.STEPS
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(prefix + first.queue)
        try:
            message = queue.get(timeout=10)
            message.ack()
        finally:
            queue.queue.delete()
            queue.close()
    args, _kwargs, embed = message.decode()
    assert message.headers["task"] == first.task and list(args) == [runs[first.kind]]
    # The rest of the chain travels with the message, last step first, each on its queue.
    chained = [(s["task"], list(s["args"]), s["options"]["queue"]) for s in embed["chain"]]
    assert chained[::-1] == [(s.task, [runs[s.kind]], prefix + s.queue) for s in rest]
    round_run.refresh_from_db()
    assert round_run.celery_task_id == embed["chain"][0]["options"]["task_id"]  # the last step's
