"""The steps of a round, declared once, and what every step hands back.

A round runs STEPS in order. Each step is a Celery task on its own queue; the chain
(services.enqueue_round), the routes (``route_task``, CELERY_TASK_ROUTES), the tasks
(tasks.py) and the in-process runner (runner.py) all derive from this declaration, so a new
step is a ``Run.Kind``, a line here and a method on each kind (kinds/registry.py).

Cheap to import: nothing here loads a kind's training code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from labeling.models import Project
from training.models import Run

if TYPE_CHECKING:
    from training.kinds.registry import Kind

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class StepContext:
    """What a kind's step works from: the step's row, its project, the project's typed
    config (validated once, when the step starts), the round's seed, and a progress
    callback (fractions of this step, 0..1; each call is also the step's heartbeat)."""

    step: Run
    project: Project
    config: Any
    seed: int
    progress: ProgressFn


@dataclass
class StepResult:
    """What a step's work hands back: metrics, and a function that writes its outputs
    (called inside the transaction that marks the step succeeded)."""

    metrics: dict
    commit: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Step:
    """One step of a round: its Run kind, its Celery task's name, the queue it runs on
    (before CELERY_QUEUE_PREFIX), and which method of the project's kind does the work."""

    kind: str
    task: str
    queue: str
    work: Callable[[Kind, StepContext], StepResult]


STEPS = (
    Step(
        Run.Kind.FIT_REWARD_MODEL,
        task="training.fit_reward_model",
        queue="train",
        work=lambda kind, context: kind.fit_reward_model(context),
    ),
    Step(
        Run.Kind.IMPROVE_POLICY,
        task="training.improve_policy",
        queue="train",
        work=lambda kind, context: kind.improve_policy(context),
    ),
    Step(
        Run.Kind.GENERATE_COMPARISONS,
        task="training.generate_comparisons",
        queue="render",
        work=lambda kind, context: kind.generate_comparisons(context),
    ),
)
STEP_BY_KIND = {step.kind: step for step in STEPS}
STEP_BY_TASK = {step.task: step for step in STEPS}
LAST_STEP = STEPS[-1].kind


def queue_of(step: Step) -> str:
    return settings.CELERY_QUEUE_PREFIX + step.queue


def route_task(name: str, args, kwargs, options, task=None, **kw) -> dict | None:
    """Celery router (settings.CELERY_TASK_ROUTES): each step's task to its step's queue."""
    step = STEP_BY_TASK.get(name)
    return {"queue": queue_of(step)} if step is not None else None


def round_seed(config: Any, round_number: int) -> int:
    """The seed of round ``round_number``: config.seed × 1000 + the round's number."""
    return int(config.seed or 0) * 1000 + round_number


def finite_metrics(metrics: dict) -> dict[str, float]:
    """Numbers only, and only finite ones: a run with no finished episode reports NaN
    returns, which JSON (and PostgreSQL's jsonb) cannot hold."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and math.isfinite(float(v))
    }


def reward_fit_metrics(counts: dict, *, train, heldout=None) -> dict:
    """``counts``, then a reward model fit's train loss (of ``train``) and held-out loss and
    accuracy (of ``heldout``, else ``train``); what a fit could not measure is left out."""
    heldout = heldout or train
    measured = {
        "reward/train_loss": train.train_loss,
        "reward/heldout_loss": heldout.heldout_loss,
        "reward/heldout_accuracy": heldout.heldout_accuracy,  # absent when all were ties
    }
    return {**counts, **{k: v for k, v in measured.items() if v is not None}}


def new_version(model, context: StepContext, *, checkpoint: str, metrics: dict) -> StepResult:
    """The result of a step that made a new ``model`` (RewardModel or Policy) version: its
    metrics, and a commit that records the version with its checkpoint."""

    def commit() -> None:
        record_version(
            model, project=context.project, checkpoint=checkpoint, metrics=metrics, run=context.step
        )

    return StepResult(metrics, commit)


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
