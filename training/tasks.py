"""Celery tasks of the loop: thin, idempotent, acknowledged late; state lives on Run rows."""

from celery import shared_task
from celery.exceptions import Ignore
from django.db import OperationalError

from training import pipelines, services

# Each training step has its own time limit, below the broker's visibility timeout.
STEP_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError,),
    "max_retries": 3,
    "retry_backoff": True,
    "time_limit": 2 * 60 * 60,
    "soft_time_limit": 2 * 60 * 60 - 60,
}


def _run(step_id: int, work) -> bool:
    try:
        return services.execute_step(step_id=step_id, work=work)
    except services.StepNotRunnable:
        raise Ignore() from None  # running elsewhere, or the round failed: stop this chain


@shared_task(name="training.fit_reward_model", **STEP_OPTIONS)
def fit_reward_model(step_id: int) -> bool:
    return _run(step_id, pipelines.fit_reward_model)


@shared_task(name="training.improve_policy", **STEP_OPTIONS)
def improve_policy(step_id: int) -> bool:
    return _run(step_id, pipelines.improve_policy)


@shared_task(name="training.generate_comparisons", **STEP_OPTIONS)
def generate_comparisons(step_id: int) -> bool:
    return _run(step_id, pipelines.generate_comparisons)


@shared_task(name="training.requeue_stale_runs", acks_late=True)
def requeue_stale_runs() -> int:
    """Periodic: send rounds that never reached the broker or whose worker died."""
    return services.requeue_stale_runs()
