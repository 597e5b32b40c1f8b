"""The dashboard's label forecast: how many more labels reach the project's
``label_target``, from the learning curve of its rounds so far (training/ml/forecast.py
fits it).

The curve is the reward model's held-out accuracy (as its error, 1 − accuracy) for text
and trajectory projects, the regret of the learned reward's optimum for tabular ones,
against the labels (non-skip judgements) the project had when each round finished.
"""

from __future__ import annotations

import math

import numpy as np

from core import sql
from labeling.config import project_config
from labeling.models import Judgement, Project
from training.kinds.registry import kind_name
from training.ml.forecast import forecast_labels
from training.models import Run

ACCURACY_METRICS = ("reward/heldout_accuracy", "charts/heldout_accuracy")
REGRET_METRIC = "regret"
MIN_ROUNDS = 3  # a power law with a floor has three parameters

# Each finished round's metrics and the labels the project had when it finished.
_CURVE_SQL = f"""
SELECT r.id,
       (SELECT count(*) FROM labeling_judgement j
        WHERE j.project_id = r.project_id AND j.created_at <= r.finished_at
          AND j.choice <> '{Judgement.Choice.SKIP.value}') AS labels
FROM training_run r
WHERE r.project_id = %(project)s AND r.kind = '{Run.Kind.ROUND.value}'
  AND r.status = '{Run.Status.SUCCEEDED.value}'
ORDER BY r.number
"""


def label_forecast(project: Project, history: list[dict]) -> dict:
    """{"metric", "target", "labels_so_far", "labels_needed", "more_labels", "ci_low",
    "ci_high", "reached", "points", "curve"} (label counts; null where the target is not reached on
    the fitted curve), or {"unavailable": why}. ``history`` is round_history(project)."""
    config = project_config(project.kind, project.config, checked=False)
    target = config.label_target
    if target is None:
        return {"unavailable": "Set label_target in the project's config to get a forecast."}
    tabular = kind_name(project, config) == "tabular"
    labels = [row[1] for row in sql.fetchall(_CURVE_SQL, {"project": project.pk})]
    points = []
    for row, n in zip(history, labels, strict=False):
        value = _curve_value(row, tabular=tabular)
        if value is not None and n > 0:
            points.append((n, value))
    metric = REGRET_METRIC if tabular else "reward/heldout_accuracy"
    if len({n for n, _ in points}) < MIN_ROUNDS:
        return {
            "unavailable": f"A forecast needs {MIN_ROUNDS} rounds that report {metric} at "
            f"different label counts; this project has {len(points)}."
        }
    n, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    goal = target if tabular else 1.0 - target  # as an error: lower is better
    forecast = forecast_labels(n, y, target=goal)
    so_far = int(labels[-1]) if labels else 0

    def count(value: float) -> int | None:
        return None if math.isinf(value) else math.ceil(value)

    needed = count(forecast.labels)
    return {
        "metric": metric,
        "target": target,
        "labels_so_far": so_far,
        "labels_needed": needed,
        "more_labels": None if needed is None else max(0, needed - so_far),
        "ci_low": count(forecast.ci_low),
        "ci_high": count(forecast.ci_high),
        "reached": bool(y[-1] <= goal),
        "points": [{"labels": int(a), metric: (b if tabular else 1.0 - b)} for a, b in points],
        # y(n) = floor + scale·n^(−exponent), as an error (1 − accuracy) or a regret
        "curve": {
            "floor": forecast.curve.floor,
            "scale": forecast.curve.scale,
            "exponent": forecast.curve.exponent,
            "as_error": not tabular,
        },
    }


def _curve_value(row: dict, *, tabular: bool) -> float | None:
    """The round's point on the curve, as an error (lower is better)."""
    if tabular:
        value = row.get(REGRET_METRIC)
        return float(value) if isinstance(value, (int, float)) and value >= 0 else None
    for metric in ACCURACY_METRICS:
        value = row.get(metric)
        if isinstance(value, (int, float)) and 0 <= value <= 1 and not math.isnan(value):
            return 1.0 - float(value)
    return None
