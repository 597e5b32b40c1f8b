"""The broker down: judgements are still recorded, and a round that could not be sent is
sent by the periodic job once the broker is back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Judgement
from rlhf_platform.celery import app
from training import services
from training.models import Run

CONFIG = {"env_id": "Pendulum-v1", "render_clips": False}


def _use_broker(url: str, *, retry: bool) -> None:
    """Point this process's Celery app at another broker, dropping pooled connections."""
    app.conf.broker_url = app.conf.broker_write_url = url
    app.conf.task_publish_retry = retry
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_judgements_are_recorded_and_the_round_is_sent_later_when_the_broker_is_down(
    make_user, make_project, make_comparison
):
    user = make_user()
    project = make_project(kind="trajectory", config=CONFIG, round_size=2, members=[user])
    for _ in range(2):
        make_comparison(project)
    working_broker = app.conf.broker_url
    _use_broker("redis://127.0.0.1:1/0", retry=False)  # nothing listens there
    try:
        for _ in range(2):
            lease = labeling_services.assign_next_comparison(annotator=user, project=project)
            labeling_services.record_judgement(
                annotator=user, comparison=lease.comparison, choice="left"
            )
    finally:
        _use_broker(working_broker, retry=True)
    assert Judgement.objects.filter(project=project).count() == 2
    round_run = Run.objects.get(project=project, kind="round")
    assert round_run.status == "queued" and round_run.celery_task_id == ""  # never sent

    Run.objects.filter(pk=round_run.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    unique_queues = {
        name: {"queue": f"outage-test-{name}"} for name in app.conf.task_routes
    }  # sent somewhere no worker listens: this test checks the sending only
    saved_routes = app.conf.task_routes
    app.conf.task_routes = unique_queues
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)
    try:
        assert services.requeue_stale_runs() == 1
    finally:
        app.conf.task_routes = saved_routes
        app.amqp.flush_routes()
        app.amqp.__dict__.pop("router", None)
        with app.connection_for_write() as connection:  # leave nothing behind on the broker
            for route in unique_queues.values():
                connection.default_channel.queue_delete(route["queue"])
    assert Run.objects.get(pk=round_run.pk).celery_task_id != ""
