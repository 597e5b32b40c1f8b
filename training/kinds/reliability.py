"""What every kind does the same about annotator reliability (training/ml/reliability.py):
read the project's ``reliability`` config, and record the estimated flip rates in the
reward model's metrics, where training.selectors.annotator_reliability reads them."""

from __future__ import annotations

from training.kinds.config import TextConfig, TrajectoryConfig, reliability_enabled
from training.ml.reliability import FlipRates, ReliabilityConfig

# The metric holding {annotator id: {"flip_rate", "n_labels"}} of a reward model's fit.
ANNOTATORS_METRIC = "reliability/annotators"


def reliability_settings(config: TextConfig | TrajectoryConfig) -> ReliabilityConfig | None:
    """The EM's settings when the project enables reliability weighting, else None."""
    if not reliability_enabled(config):
        return None
    overrides = {k: v for k, v in config.reliability.items() if k != "enabled"}
    return ReliabilityConfig(**overrides)


def reliability_metrics(estimate: FlipRates | None) -> dict:
    """The reward model's reliability metrics: per annotator (by user id) the estimated
    flip rate ε_a and the labels it rests on (non-tie training labels judged out of
    sample), their mean and maximum, and the mean posterior that a label is right; {}
    without an estimate."""
    if estimate is None or not estimate.flip_rates:
        return {}
    rates = estimate.flip_rates
    return {
        ANNOTATORS_METRIC: {
            str(annotator): {
                "flip_rate": round(rate, 6),
                "n_labels": estimate.n_labels[annotator],
            }
            for annotator, rate in rates.items()
        },
        "reliability/mean_flip_rate": sum(rates.values()) / len(rates),
        "reliability/max_flip_rate": max(rates.values()),
        "reliability/mean_label_weight": float(estimate.weights.mean()),
    }
