"""A real Celery worker process, on the real broker, runs a task against the test database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import services, tasks
from labeling.models import Assignment


@pytest.mark.worker
def test_a_real_worker_releases_expired_leases(
    celery_worker_process, make_user, make_project, make_comparison
):
    user = make_user()
    project = make_project(members=[user])
    make_comparison(project)
    lease = services.assign_next_comparison(annotator=user, project=project)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    result = tasks.release_expired_leases.delay()  # to the worker's own default queue

    assert result.get(timeout=60) == 1  # the worker ran it, not this process
    lease.refresh_from_db()
    assert lease.status == "released"
