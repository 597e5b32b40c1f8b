"""Which of a round's metrics are shown, per kind of project: the dashboard's rounds table
and the line run_loop prints after each round. Each kind logs different names (TRL's for
text, CleanRL's for trajectories), so each gets its own columns."""

from __future__ import annotations

from dataclasses import dataclass

from labeling.config import project_config
from labeling.models import Project
from training.kinds.registry import kind_name


@dataclass(frozen=True)
class RoundColumn:
    """One metric of a round: its name as the steps log it, a heading, and the decimals
    it is shown with; ``<metric>_se``, when a round reports it, is shown as ± s.e."""

    metric: str
    label: str
    digits: int = 3


COMPARISONS = RoundColumn("comparisons/created", "Comparisons made", 0)
REWARD_ACCURACY = RoundColumn("reward/heldout_accuracy", "Reward model held-out accuracy")
PAIRS_FITTED = RoundColumn("reward/n_pairs", "Pairs fitted", 0)
TRUE_RETURN = RoundColumn("charts/true_return", "True return", 2)

ROUND_COLUMNS: dict[str, list[RoundColumn]] = {
    "text": [
        # DPO (TRL's names), then reward model + PPO/REINFORCE
        RoundColumn("rewards/accuracies", "DPO reward accuracy"),
        RoundColumn("rewards/margins", "DPO reward margin"),
        RoundColumn("logps/chosen", "log p(chosen)", 2),
        RoundColumn("loss", "DPO loss"),
        # KTO (training/ml/lm/kto.py)
        RoundColumn("rewards/desirable", "KTO reward of desirable"),
        RoundColumn("rewards/undesirable", "KTO reward of undesirable"),
        RoundColumn("kto/kl", "KTO reference point z0 (KL estimate)"),
        RoundColumn("kto/loss", "KTO loss"),
        RoundColumn("reward/n_judgements", "Judgements fitted", 0),
        REWARD_ACCURACY,
        RoundColumn("kl", "KL to the reference in training (PPO/REINFORCE)"),
        # the round's policy against the base model on held-out prompts (kinds/text_eval.py)
        RoundColumn("teacher/win_rate", "Teacher win rate over the reference"),
        RoundColumn("kl/sequence", "Sequence KL to the reference"),
        RoundColumn("teacher/mean_score", "Teacher score of samples"),
        COMPARISONS,
    ],
    "trajectory": [
        PAIRS_FITTED,
        REWARD_ACCURACY,
        TRUE_RETURN,
        RoundColumn("charts/mean_learned_reward", "Mean learned reward"),
        COMPARISONS,
    ],
    "tabular": [
        PAIRS_FITTED,
        REWARD_ACCURACY,
        RoundColumn("regret", "Regret of the learned reward's optimum"),
        RoundColumn("policy/regret", "Regret of the trained policy"),
        TRUE_RETURN,
        COMPARISONS,
    ],
}


def round_columns(project: Project) -> list[RoundColumn]:
    """The columns of ``project``'s kind (text, trajectory or tabular)."""
    config = project_config(project.kind, project.config, checked=False)
    return ROUND_COLUMNS[kind_name(project, config)]


def reported_columns(columns: list[RoundColumn], history: list[dict]) -> list[RoundColumn]:
    """The columns some round of ``history`` reports (an algorithm logs only its own)."""
    return [c for c in columns if any(c.metric in row for row in history)]


def format_metric(row: dict, column: RoundColumn) -> str | None:
    """The round's value of ``column`` as text ("-161.20 ± 12.05"), None when absent."""
    value = row.get(column.metric)
    if not isinstance(value, (int, float)):
        return None
    if column.digits == 0:
        text = str(round(value))
    else:
        text = f"{value:.{column.digits}f}"
    se = row.get(f"{column.metric}_se")
    if isinstance(se, (int, float)):
        text += f" ± {se:.{column.digits}f}"
    return text


def round_summary(project: Project, metrics: dict) -> str:
    """One round's metrics of the project's kind, as ``name=value`` pairs (run_loop)."""
    shown = ((column.metric, format_metric(metrics, column)) for column in round_columns(project))
    return ", ".join(f"{name}={text}" for name, text in shown if text is not None)
