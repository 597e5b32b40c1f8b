"""The loop's workflow: start a round, send it, run its steps, record their state on Run
rows, and re-send rounds that went stale.

A round is the steps of training.steps.STEPS, each a Celery task on its own queue. A step
is claimed with a conditional update before any work, computes outside any transaction,
then writes its outputs and its success in one transaction; a redelivered step that
already succeeded does nothing. Rounds of one project never overlap (a partial unique
index says so).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta

from celery import chain, current_app
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from core import storage
from core.errors import Conflict, InvalidInput
from labeling import selectors, webhooks
from labeling.config import project_config
from labeling.models import Project, Webhook
from training import selectors as training_selectors
from training.kinds.config import check_trainable as check_config_trainable
from training.models import Policy, Run
from training.steps import LAST_STEP, STEPS, ProgressFn, StepResult, queue_of

logger = logging.getLogger(__name__)


class RoundInProgress(Conflict):
    def __init__(self, active: Run):
        super().__init__(
            f"Round {active.number} of project {active.project.slug!r} is {active.status} "
            f"(run {active.pk}); rounds of one project never overlap."
        )
        self.active = active


class StepNotRunnable(Exception):
    """A step that is running elsewhere or has failed: its chain stops here."""


class ClaimLost(StepNotRunnable):
    """This worker's claim on a step was taken over (the step was re-queued and claimed
    again): its work is dropped and it commits nothing."""


# A step whose worker keeps dying is re-sent at most this many times, then its round fails.
MAX_STEP_ATTEMPTS = 3
# A round still queued after this long lost its broker message (a broker restarted without
# persistence, say) and is sent again; longer than the broker's visibility timeout.
RESEND_QUEUED_AFTER = timedelta(hours=4)


# Rounds start automatically after round_size judgements unless a caller that runs rounds
# itself (manage.py run_loop) switches this off for the judgements it makes.
auto_rounds = ContextVar("auto_rounds", default=True)


# --- starting rounds -------------------------------------------------------------------------
def check_trainable(project: Project) -> None:
    """Raise InvalidInput saying what is missing when this project cannot train. Cheap: it
    reads the stored config without checking it again and loads no training code, so a
    web request can ask after every judgement."""
    check_config_trainable(
        project.slug, project_config(project.kind, project.config, checked=False)
    )


def start_round(*, project: Project, trigger: str, enqueue: bool = True) -> Run:
    """Queue a round of the loop for ``project`` and, with ``enqueue``, send it to the
    workers once this transaction commits (run_loop runs the steps itself instead).
    Raises RoundInProgress when one is already queued or running."""
    check_trainable(project)
    with transaction.atomic():
        active = _lock_with_no_active_round(project)  # serialises round numbering
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
            Run(project=project, kind=step.kind, round=round_run, number=number, trigger=trigger)
            for step in STEPS
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_round(round_run.pk))
    return round_run


def start_first_comparisons(*, project: Project, trigger: str) -> Run:
    """Queue a generate_comparisons step outside any round (number 0) that makes a project's
    first comparisons from its initial policy, so that once they are judged round 1 already
    trains on judgements (run_loop --teacher). The caller runs the step (runner.run_step_here).
    Raises RoundInProgress while a round is active, Conflict when the project has
    comparisons already."""
    check_trainable(project)
    with transaction.atomic():
        _lock_with_no_active_round(project)
        if project.comparisons.exists():
            raise Conflict(
                f"Project {project.slug!r} has comparisons already; its rounds make the next ones."
            )
        return Run.objects.create(
            project=project, kind=Run.Kind.GENERATE_COMPARISONS, number=0, trigger=trigger
        )


def _lock_with_no_active_round(project: Project):
    """Lock the project's row (inside the caller's transaction) and raise RoundInProgress
    if a round is queued or running; returns the query of its active rounds."""
    Project.objects.select_for_update().get(pk=project.pk)
    active = Run.objects.filter(project=project, kind=Run.Kind.ROUND, status__in=Run.ACTIVE)
    if (current := active.first()) is not None:
        raise RoundInProgress(current)
    return active


def enqueue_round(round_id: int) -> bool:
    """Send the round's steps to the broker as one chain. A broker outage is logged, not
    raised: the round stays queued and requeue_stale_runs sends it later. The tasks are
    named, not imported: the web process never loads the training code."""
    runs = {s.kind: s.pk for s in Run.objects.filter(round_id=round_id)}
    signature = chain(
        *[
            current_app.signature(step.task, args=(runs[step.kind],), immutable=True).set(
                queue=queue_of(step)
            )
            for step in STEPS
        ]
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
    new = selectors.count_judgements_since(
        project_id=project_id,
        since=training_selectors.last_round_started_at(project_id),
        enough=project.round_size,
    )
    if new < project.round_size:
        return None
    try:
        return start_round(project=project, trigger="judgements")
    except RoundInProgress:
        return None


# --- running steps ---------------------------------------------------------------------------
def execute_step(*, step_id: int, work: Callable[[Run, ProgressFn], StepResult]) -> bool:
    """Claim the queued step, run ``work``, record the outcome.

    Returns False when the step had already succeeded (a redelivered task: the chain goes
    on to the next step). Raises StepNotRunnable when it is running elsewhere or failed,
    which stops the chain; requeue_stale_runs re-queues steps whose worker died. The claim
    is the step's attempt number: progress and the final write go through only while the
    step is still this attempt's, so a worker whose step was re-queued and claimed again
    (ClaimLost) writes nothing, and the files it stored are deleted (as are those of an
    attempt that fails)."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=step_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        progress=0.0,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        current = Run.objects.filter(pk=step_id).first()
        if current is None:  # its project was deleted, and the round's rows with it
            raise StepNotRunnable(f"step {step_id} no longer exists (its project was deleted)")
        if current.status == Run.Status.SUCCEEDED:
            return False
        raise StepNotRunnable(f"step {step_id} is {current.status}; not running it again")
    step = Run.objects.select_related("project", "round").get(pk=step_id)
    claim = Run.objects.filter(pk=step.pk, status=Run.Status.RUNNING, attempts=step.attempts)
    Run.objects.filter(pk=step.round_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if step.round and step.round.status == Run.Status.FAILED:
        _fail(step, "the round failed in an earlier step")
        return False

    def progress(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if not claim.update(progress=fraction, heartbeat_at=timezone.now()):
            raise ClaimLost(f"step {step.pk}'s attempt {step.attempts} was taken over")
        _update_round_progress(step.round_id)

    with storage.tracking_writes() as written:
        try:
            return _run_claimed(step, claim, work, progress)
        except BaseException:  # a step that wrote no row leaves no files either
            storage.delete_now(written)
            raise


def _run_claimed(step: Run, claim, work, progress: ProgressFn) -> bool:
    """Run ``work`` and commit its result while ``claim`` (this attempt) holds the step."""
    try:
        result = work(step, progress)
        with transaction.atomic():
            finished = timezone.now()
            # Marked succeeded first, under this attempt's claim: one that lost it stops
            # here, before writing any output.
            if not claim.update(
                status=Run.Status.SUCCEEDED,
                progress=1.0,
                metrics=result.metrics,
                finished_at=finished,
            ):
                raise ClaimLost(f"step {step.pk}'s attempt {step.attempts} was taken over")
            result.commit()
            if step.kind == LAST_STEP:
                Run.objects.filter(pk=step.round_id).update(
                    status=Run.Status.SUCCEEDED, progress=1.0, finished_at=finished
                )
                _emit_round_finished(step.round_id)
            _update_round_progress(step.round_id)
    except ClaimLost:
        logger.warning("step %s: attempt %s lost its claim; nothing kept", step.pk, step.attempts)
        raise
    except Exception as exc:
        _fail(step, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}", claim=claim)
        raise
    return True


def _fail(step: Run, error: str, *, claim=None) -> None:
    """Mark the step (only while ``claim`` holds, when given) and its round failed."""
    finished = timezone.now()
    mine = claim if claim is not None else Run.objects.filter(pk=step.pk)
    if not mine.update(status=Run.Status.FAILED, error=error, finished_at=finished):
        return  # another attempt owns the step now
    if step.round_id:
        newly_failed = (
            Run.objects.filter(pk=step.round_id).exclude(status=Run.Status.FAILED).exists()
        )
        Run.objects.filter(pk=step.round_id).update(
            status=Run.Status.FAILED,
            error=f"step {step.kind} failed: {error.splitlines()[0]}",
            finished_at=finished,
        )
        Run.objects.filter(round_id=step.round_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED, error="not run: an earlier step failed", finished_at=finished
        )
        if newly_failed:
            _emit_round_finished(step.round_id)


def _emit_round_finished(round_id: int) -> None:
    """The ``round.finished`` webhook event of a round that has just succeeded or failed."""
    round_run = Run.objects.select_related("project").filter(pk=round_id).first()
    if round_run is None or not round_run.project.has_webhooks:  # None: project deleted
        return
    policy = Policy.objects.filter(run__round_id=round_id).aggregate(version=Max("version"))
    webhooks.emit(
        project_id=round_run.project_id,
        event=Webhook.Event.ROUND_FINISHED,
        payload={
            "run_id": round_run.pk,
            "round": round_run.number,
            "status": round_run.status,
            "error": round_run.error,
            "metrics": training_selectors.metrics_of_round(round_run),
            "policy_version": policy["version"],
            "finished_at": round_run.finished_at,
        },
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
    """Periodic: re-send rounds that never reached the broker or whose message was lost
    (still queued after RESEND_QUEUED_AFTER), and rounds whose running step has not
    reported progress for ``stale_after`` (its worker died). A step already tried
    MAX_STEP_ATTEMPTS times is not re-sent: its round fails, saying so."""
    now = timezone.now()
    sent = 0
    unsent = Run.objects.filter(
        Q(celery_task_id="", created_at__lt=now - timedelta(seconds=30))
        | Q(created_at__lt=now - RESEND_QUEUED_AFTER),
        kind=Run.Kind.ROUND,
        status=Run.Status.QUEUED,
    )
    for round_run in unsent:
        sent += int(enqueue_round(round_run.pk))
    stale = Run.objects.filter(
        kind=Run.Kind.ROUND, status=Run.Status.RUNNING, heartbeat_at__lt=now - stale_after
    ).exclude(trigger="cli")  # run_loop runs its rounds in its own process
    for round_run in stale:
        for step in Run.objects.filter(round=round_run, status=Run.Status.RUNNING):
            if step.attempts >= MAX_STEP_ATTEMPTS:
                _fail(
                    step,
                    f"the step's worker stopped reporting {step.attempts} times "
                    f"(MAX_STEP_ATTEMPTS = {MAX_STEP_ATTEMPTS}); not sending it again",
                )
        if Run.objects.filter(pk=round_run.pk, status=Run.Status.FAILED).exists():
            continue
        Run.objects.filter(round=round_run, status=Run.Status.RUNNING).update(
            status=Run.Status.QUEUED
        )
        sent += int(enqueue_round(round_run.pk))
    return sent
