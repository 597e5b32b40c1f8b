"""Celery tasks of the labeling app: thin wrappers around services."""

from celery import shared_task
from django.db import OperationalError

from labeling import services


@shared_task(
    name="labeling.release_expired_leases",
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=3,
)
def release_expired_leases() -> int:
    """Periodic: return comparisons whose leases expired to the pool."""
    return services.release_expired_leases()


@shared_task(
    name="labeling.run_import",
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=3,
)
def run_import(job_id: int) -> str:
    """Import a large JSONL upload (an ImportJob) in the background."""
    from labeling import import_jobs

    return import_jobs.run(job_id)
