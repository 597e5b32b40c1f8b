"""Rounds run in this process, without the broker (manage.py run_loop, tests)."""

from __future__ import annotations

from collections.abc import Callable

from training import services
from training.kinds.registry import perform_step
from training.models import Run
from training.steps import STEPS


def run_round_here(round_run: Run, *, before_step: Callable[[Run], None] | None = None) -> Run:
    """Run a round's steps in this process, in the order of STEPS. An exception from a step
    propagates after the step and its round are marked failed."""
    runs = {run.kind: run for run in round_run.steps.all()}
    for step in STEPS:
        run = runs[step.kind]
        if before_step is not None:
            before_step(run)
        services.execute_step(step_id=run.pk, work=perform_step)
    round_run.refresh_from_db()
    return round_run


def run_step_here(step: Run) -> Run:
    """Run one queued step in this process (services.start_first_comparisons' step, which
    belongs to no round). An exception from it propagates after it is marked failed."""
    services.execute_step(step_id=step.pk, work=perform_step)
    step.refresh_from_db()
    return step
