"""The loop's workflow: start a round, run its steps, record their state on Run rows.

A round is three steps, each a Celery task on its own queue: fit_reward_model (train)
→ improve_policy (train) → generate_comparisons (render). A step is claimed with a
conditional update before any work, computes outside any transaction, then writes its
outputs and its success in one transaction; a redelivered step that already succeeded
does nothing. Rounds of one project never overlap (a partial unique index says so).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from core import sql
from core.errors import Conflict, InvalidInput
from labeling import selectors
from labeling.models import Project
from training.models import Run

logger = logging.getLogger(__name__)

STEPS = (Run.Kind.FIT_REWARD_MODEL, Run.Kind.IMPROVE_POLICY, Run.Kind.GENERATE_COMPARISONS)


class RoundInProgress(Conflict):
    def __init__(self, active: Run):
        super().__init__(
            f"Round {active.number} of project {active.project.slug!r} is {active.status} "
            f"(run {active.pk}); rounds of one project never overlap."
        )
        self.active = active


class StepNotRunnable(Exception):
    """A step that is running elsewhere or has failed: its chain stops here."""


# Rounds start automatically after round_size judgements unless a caller that runs rounds
# itself (manage.py run_loop) switches this off for the judgements it makes.
auto_rounds = ContextVar("auto_rounds", default=True)


# --- starting rounds -------------------------------------------------------------------------
def check_trainable(project: Project) -> None:
    """Raise InvalidInput saying what is missing when this project cannot train."""
    from training import pipelines

    pipelines.check_trainable(project)


def start_round(*, project: Project, trigger: str, enqueue: bool = True) -> Run:
    """Queue a round of the loop for ``project`` and, with ``enqueue``, send it to the
    workers once this transaction commits (run_loop runs the steps itself instead).
    Raises RoundInProgress when one is already queued or running."""
    check_trainable(project)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # serialise round numbering
        active = Run.objects.filter(project=project, kind=Run.Kind.ROUND, status__in=Run.ACTIVE)
        if (current := active.first()) is not None:
            raise RoundInProgress(current)
        last = Run.objects.filter(project=project, kind=Run.Kind.ROUND).aggregate(n=Max("number"))
        number = (last["n"] or 0) + 1
        try:
            with transaction.atomic():
                round_run = Run.objects.create(
                    project=project, kind=Run.Kind.ROUND, number=number, trigger=trigger
                )
        except IntegrityError:
            raise RoundInProgress(active.get()) from None
        Run.objects.bulk_create(
            Run(project=project, kind=kind, round=round_run, number=number, trigger=trigger)
            for kind in STEPS
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_round(round_run.pk))
    return round_run


def enqueue_round(round_id: int) -> bool:
    """Send the round's steps to the broker as one chain. A broker outage is logged, not
    raised: the round stays queued and requeue_stale_runs sends it later."""
    from celery import chain

    from training import tasks

    steps = {s.kind: s.pk for s in Run.objects.filter(round_id=round_id)}
    signature = chain(
        tasks.fit_reward_model.si(steps[Run.Kind.FIT_REWARD_MODEL]),
        tasks.improve_policy.si(steps[Run.Kind.IMPROVE_POLICY]),
        tasks.generate_comparisons.si(steps[Run.Kind.GENERATE_COMPARISONS]),
    )
    try:
        result = signature.apply_async()
    except Exception:
        logger.exception("could not enqueue round %s; it stays queued", round_id)
        return False
    Run.objects.filter(pk=round_id).update(celery_task_id=result.id)
    return True


def maybe_start_round_after_judgement(
    *, project_id: int, project: Project | None = None
) -> Run | None:
    """Start a round when ``round_size`` judgements have arrived since the last one. Runs
    after every judgement, so it costs at most two small queries until a round is due (none
    for a project that cannot train, when the caller passes the project it has)."""
    if not auto_rounds.get():
        return None
    project = project or selectors.project_by_id(project_id)
    try:
        check_trainable(project)
    except InvalidInput:
        return None
    (new,) = sql.fetchone(
        """
        SELECT count(*) FROM (
            SELECT 1 FROM labeling_judgement j
            WHERE j.project_id = %(project)s AND j.choice <> 'skip'
              AND j.created_at > COALESCE(
                  (SELECT max(r.created_at) FROM training_run r
                   WHERE r.project_id = %(project)s AND r.kind = 'round'), '-infinity')
            LIMIT %(enough)s) AS recent
        """,
        {"project": project_id, "enough": project.round_size},
    )
    if new < project.round_size:
        return None
    try:
        return start_round(project=project, trigger="judgements")
    except RoundInProgress:
        return None


# --- versions --------------------------------------------------------------------------------
def record_version(model, *, project: Project, checkpoint: str, metrics: dict, run: Run):
    """A new RewardModel or Policy version: the next number, the newest one as parent.
    Call inside the transaction that marks ``run`` succeeded (StepResult.commit)."""
    parent = model.objects.filter(project=project).order_by("-version").first()
    return model.objects.create(
        project=project,
        version=parent.version + 1 if parent else 1,
        parent=parent,
        checkpoint=checkpoint,
        metrics=metrics,
        run=run,
    )


# --- running steps ---------------------------------------------------------------------------
@dataclass
class StepResult:
    """What a step's work hands back: metrics, and a function that writes its outputs
    (called inside the transaction that marks the step succeeded)."""

    metrics: dict
    commit: Callable[[], None] = field(default=lambda: None)


ProgressFn = Callable[[float], None]


def execute_step(*, step_id: int, work: Callable[[Run, ProgressFn], StepResult]) -> bool:
    """Claim the queued step, run ``work``, record the outcome.

    Returns False when the step had already succeeded (a redelivered task: the chain goes
    on to the next step). Raises StepNotRunnable when it is running elsewhere or failed,
    which stops the chain; requeue_stale_runs re-queues steps whose worker died."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=step_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        progress=0.0,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        current = Run.objects.get(pk=step_id)
        if current.status == Run.Status.SUCCEEDED:
            return False
        raise StepNotRunnable(f"step {step_id} is {current.status}; not running it again")
    step = Run.objects.select_related("project", "round").get(pk=step_id)
    Run.objects.filter(pk=step.round_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if step.round and step.round.status == Run.Status.FAILED:
        _fail(step, "the round failed in an earlier step")
        return False

    def progress(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        Run.objects.filter(pk=step.pk).update(progress=fraction, heartbeat_at=timezone.now())
        _update_round_progress(step.round_id)

    try:
        result = work(step, progress)
        with transaction.atomic():
            result.commit()
            finished = timezone.now()
            Run.objects.filter(pk=step.pk).update(
                status=Run.Status.SUCCEEDED,
                progress=1.0,
                metrics=result.metrics,
                finished_at=finished,
            )
            if step.kind == Run.Kind.GENERATE_COMPARISONS:
                Run.objects.filter(pk=step.round_id).update(
                    status=Run.Status.SUCCEEDED, progress=1.0, finished_at=finished
                )
            _update_round_progress(step.round_id)
    except Exception as exc:
        _fail(step, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    return True


def run_round_here(round_run: Run, *, before_step: Callable[[Run], None] | None = None) -> Run:
    """Run a round's steps in this process, in order, without the broker (run_loop, tests).
    An exception from a step propagates after the step and its round are marked failed."""
    from training import pipelines

    for step in round_run.steps.order_by("pk"):
        if before_step is not None:
            before_step(step)
        execute_step(step_id=step.pk, work=getattr(pipelines, step.kind))
    round_run.refresh_from_db()
    return round_run


def _fail(step: Run, error: str) -> None:
    finished = timezone.now()
    Run.objects.filter(pk=step.pk).update(
        status=Run.Status.FAILED, error=error, finished_at=finished
    )
    if step.round_id:
        Run.objects.filter(pk=step.round_id).update(
            status=Run.Status.FAILED,
            error=f"step {step.kind} failed: {error.splitlines()[0]}",
            finished_at=finished,
        )
        Run.objects.filter(round_id=step.round_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED, error="not run: an earlier step failed", finished_at=finished
        )


def _update_round_progress(round_id: int | None) -> None:
    if round_id is None:
        return
    steps = list(Run.objects.filter(round_id=round_id).values_list("progress", flat=True))
    if steps:
        Run.objects.filter(pk=round_id).update(
            progress=sum(steps) / len(steps), heartbeat_at=timezone.now()
        )


def requeue_stale_runs(*, stale_after: timedelta = timedelta(minutes=10)) -> int:
    """Periodic: re-send rounds that never reached the broker, and rounds whose running
    step has not reported progress for ``stale_after`` (its worker died)."""
    now = timezone.now()
    sent = 0
    unsent = Run.objects.filter(
        kind=Run.Kind.ROUND,
        status=Run.Status.QUEUED,
        celery_task_id="",
        created_at__lt=now - timedelta(seconds=30),
    )
    for round_run in unsent:
        sent += int(enqueue_round(round_run.pk))
    stale = Run.objects.filter(
        kind=Run.Kind.ROUND, status=Run.Status.RUNNING, heartbeat_at__lt=now - stale_after
    ).exclude(trigger="cli")  # run_loop runs its rounds in its own process
    for round_run in stale:
        Run.objects.filter(round=round_run, status=Run.Status.RUNNING).update(
            status=Run.Status.QUEUED
        )
        sent += int(enqueue_round(round_run.pk))
    return sent
