"""Celery tasks of the labeling app: thin wrappers around services."""

from celery import shared_task
from django.db import OperationalError

from labeling import services, webhooks


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


@shared_task(
    name="labeling.deliver_webhook",
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=None,  # attempts are counted, and bounded, on the delivery's row
    time_limit=120,
)
def deliver_webhook(self, delivery_id: int) -> str:
    """POST one webhook delivery; a failed attempt is retried after its backoff until
    WEBHOOK_MAX_ATTEMPTS. A delivery that is no longer pending is left alone."""
    result = webhooks.attempt_delivery(delivery_id)
    if result.retry_in_s is not None:
        raise self.retry(countdown=result.retry_in_s)
    return result.status


@shared_task(name="labeling.resend_stale_deliveries")
def resend_stale_deliveries() -> int:
    """Periodic: send again the webhook deliveries whose message was lost."""
    return webhooks.resend_stale_deliveries()
