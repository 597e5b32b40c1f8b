"""Reads of the training app: when the last round started, and the per-round history the
dashboard plots."""

from __future__ import annotations

from datetime import datetime

from core import sql
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
    ("kl", "KL to the reference"),
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


def round_history(project: Project) -> list[dict]:
    """One dict per finished round, oldest first: the round's number and the metrics
    its steps reported (later steps win when two report the same name)."""
    rounds = (
        Run.objects.filter(project=project, kind=Run.Kind.ROUND, status=Run.Status.SUCCEEDED)
        .prefetch_related("steps")
        .order_by("number")
    )
    history = []
    for round_run in rounds:
        merged: dict = {"round": round_run.number}
        for step in sorted(round_run.steps.all(), key=lambda s: s.pk):
            merged.update({k: v for k, v in step.metrics.items() if isinstance(v, (int, float))})
        history.append(merged)
    return history


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
