"""Reads of the training app: when the last round started, what an annotator may know of
the project's training, and the per-round history the dashboard plots."""

from __future__ import annotations

from datetime import datetime

from core import sql
from labeling import selectors as labeling_selectors
from labeling.config import project_config
from labeling.models import Project
from training.models import Run

# What the dashboard plots, per round, when a round's steps report it: (metric, title).
PLOTTED_METRICS = [
    ("reward/heldout_accuracy", "Reward model held-out accuracy"),
    ("charts/true_return", "Policy's true return (env reward, ± s.e.)"),
    ("charts/mean_learned_reward", "Mean learned reward"),
    ("regret", "Regret of the learned reward's optimal policy"),
    ("policy/regret", "Regret of the trained policy (true reward)"),
    ("rewards/margins", "DPO reward margin"),
    ("rewards/accuracies", "DPO reward accuracy"),
    ("kl", "KL to the reference in training (PPO/REINFORCE)"),
    ("teacher/win_rate", "Teacher win rate over the reference (± s.e.)"),
    ("kl/sequence", "Sequence KL to the reference"),
    ("teacher/mean_score", "Teacher score of samples"),
]


def last_round_started_at(project_id: int) -> datetime | None:
    """When the project's newest round was created (None before the first): one indexed
    query without the ORM, since it runs after every judgement."""
    (at,) = sql.fetchone(
        "SELECT max(created_at) FROM training_run WHERE project_id = %s AND kind = %s",
        [project_id, Run.Kind.ROUND.value],
    )
    return at


def comparison_batches_made(project: Project) -> int:
    """How many batches of comparisons the project has made (its generate_comparisons steps
    that succeeded): a label schedule counts batches, not rounds, since run_loop --teacher
    makes the first batch before round 1 (services.start_first_comparisons)."""
    return Run.objects.filter(
        project=project, kind=Run.Kind.GENERATE_COMPARISONS, status=Run.Status.SUCCEEDED
    ).count()


def training_status(project: Project) -> dict:
    """What the annotator's page says when nothing is left to judge.

    ``has_training``: whether the project's comparisons come from training rounds (a
    trajectory project, a text project with a model); ``round``: the round now queued or
    running, as {number, status, step (the kind of its running or next step), progress
    (0..1 of the whole round)}, or None; ``judgements_to_next_round``: with no round
    active, how many more judgements start one (None for a project that does not train)."""
    config = project_config(project.kind, project.config, checked=False)
    has_training = config.missing_for_training() is None
    active = (
        Run.objects.filter(project=project, kind=Run.Kind.ROUND, status__in=Run.ACTIVE)
        .prefetch_related("steps")
        .first()
    )
    round_status = None
    if active is not None:
        steps = sorted(active.steps.all(), key=lambda step: step.pk)
        current = next((s for s in steps if s.status == Run.Status.RUNNING), None) or next(
            (s for s in steps if s.status == Run.Status.QUEUED), None
        )
        round_status = {
            "number": active.number,
            "status": active.status,
            "step": current.kind if current is not None else None,
            "progress": active.progress,
        }
    to_next = None
    if has_training and active is None:
        done = labeling_selectors.count_judgements_since(
            project_id=project.pk,
            since=last_round_started_at(project.pk),
            enough=project.round_size,
        )
        to_next = project.round_size - done
    return {
        "has_training": has_training,
        "round": round_status,
        "judgements_to_next_round": to_next,
    }


def round_history(project: Project) -> list[dict]:
    """One dict per finished round, oldest first: the round's number and the metrics
    its steps reported (later steps win when two report the same name)."""
    rounds = (
        Run.objects.filter(project=project, kind=Run.Kind.ROUND, status=Run.Status.SUCCEEDED)
        .prefetch_related("steps")
        .order_by("number")
    )
    return [{"round": round_run.number, **metrics_of_round(round_run)} for round_run in rounds]


def metrics_of_round(round_run: Run) -> dict:
    """The numeric metrics a round's steps reported, later steps winning when two report
    the same name (reads ``round_run.steps.all()``, so a prefetch serves it)."""
    merged: dict = {}
    for step in sorted(round_run.steps.all(), key=lambda s: s.pk):
        merged.update({k: v for k, v in step.metrics.items() if isinstance(v, (int, float))})
    return merged


def plotted_series(
    history: list[dict],
) -> list[tuple[str, str, list[int], list[float], list[float] | None]]:
    """(metric, title, rounds, values, standard errors or None) for each plotted metric that
    some round reports; a metric's standard error is the metric named ``<metric>_se``."""
    series = []
    for metric, title in PLOTTED_METRICS:
        rows = [row for row in history if metric in row]
        if rows:
            errors = [row.get(f"{metric}_se", 0.0) for row in rows]
            series.append(
                (
                    metric,
                    title,
                    [row["round"] for row in rows],
                    [row[metric] for row in rows],
                    errors if any(f"{metric}_se" in row for row in rows) else None,
                )
            )
    return series


def annotator_reliability(project: Project) -> list[dict]:
    """Each annotator's latest estimated reliability, for the dashboard: from the newest
    reward model version whose fit estimated that annotator's flip rate (a project with
    ``reliability`` enabled; see training/ml/reliability.py). One dict per annotator,
    least reliable first (then by username): {"annotator_id", "username", "flip_rate" (ε,
    the estimated share of their labels that are flipped), "reliability" (1 − ε),
    "n_labels" (the non-tie training labels the estimate rests on, those judged out of
    sample; an estimate on few labels stays near the prior's ε), "reward_model_version",
    "estimated_at" (that version's creation time)}. Empty when no fit estimated any."""
    from django.contrib.auth import get_user_model

    from training.models import RewardModel

    metric = "reliability/annotators"  # training.kinds.reliability.ANNOTATORS_METRIC
    latest: dict[int, dict] = {}
    versions = (
        RewardModel.objects.filter(project=project, metrics__has_key=metric)
        .order_by("-version")
        .only("version", "metrics", "created_at")
    )
    for row in versions:
        for annotator, estimate in row.metrics[metric].items():
            latest.setdefault(
                int(annotator),
                {
                    "annotator_id": int(annotator),
                    "flip_rate": float(estimate["flip_rate"]),
                    "reliability": 1.0 - float(estimate["flip_rate"]),
                    "n_labels": int(estimate["n_labels"]),
                    "reward_model_version": row.version,
                    "estimated_at": row.created_at,
                },
            )
    user_model = get_user_model()
    usernames = dict(
        user_model.objects.filter(pk__in=latest).values_list("pk", user_model.USERNAME_FIELD)
    )
    rows = [
        {"username": usernames.get(pk, f"(deleted user {pk})"), **row} for pk, row in latest.items()
    ]
    return sorted(rows, key=lambda row: (-row["flip_rate"], row["username"]))
