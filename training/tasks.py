"""Celery tasks of the loop: thin, idempotent, acknowledged late; state lives on Run rows.

One task per step of training.steps.STEPS, named and routed as declared there; and the
arenas' sampling and periodic check (training/arena.py)."""

from celery import shared_task
from celery.exceptions import Ignore
from django.db import OperationalError

from training import arena, services
from training.kinds.registry import perform_step
from training.steps import STEPS, Step

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


def _step_task(step: Step):
    def run_step(step_id: int) -> bool:
        try:
            return services.execute_step(step_id=step_id, work=perform_step)
        except services.StepNotRunnable:
            raise Ignore() from None  # running elsewhere, or the round failed: stop this chain

    run_step.__name__ = run_step.__qualname__ = step.kind
    run_step.__doc__ = f"Run the {step.kind} step of a round (its Run's id)."
    return shared_task(name=step.task, **STEP_OPTIONS)(run_step)


STEP_TASKS = {step.kind: _step_task(step) for step in STEPS}


@shared_task(name="training.requeue_stale_runs", acks_late=True)
def requeue_stale_runs() -> int:
    """Periodic: send rounds that never reached the broker or whose worker died."""
    return services.requeue_stale_runs()


@shared_task(name=arena.SAMPLE_TASK, **STEP_OPTIONS)
def sample_arena(arena_id: int) -> bool:
    """Sample an arena's comparisons (its Arena's id); a redelivered message does nothing."""
    try:
        return arena.sample_arena(arena_id=arena_id)
    except arena.ClaimLost:
        raise Ignore() from None  # another attempt owns the arena now


@shared_task(name="training.check_arenas", acks_late=True)
def check_arenas() -> dict[str, int]:
    """Periodic: finish judged arenas; send arenas that never reached a worker or whose
    worker died."""
    return arena.check_arenas()
