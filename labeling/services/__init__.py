"""Every write of the labeling app. Each public function is one transaction.

projects.py sets projects up, assignment.py leases comparisons, judging.py records answers,
revising.py changes them; feedback_answers.py checks the feedback an answer carries beside
its choice (and stores an edit of the winner).
"""

from labeling.services.assignment import (
    ASSIGN_PATIENCE_SECONDS,
    assign_next_comparison,
    release_expired_leases,
)
from labeling.services.judging import (
    PAIR_CHOICES,
    JudgementResult,
    record_imported_judgement,
    record_judgement,
)
from labeling.services.projects import add_member, create_comparison, create_project
from labeling.services.revising import RevisionResult, revise_judgement

__all__ = [
    "ASSIGN_PATIENCE_SECONDS",
    "PAIR_CHOICES",
    "JudgementResult",
    "RevisionResult",
    "add_member",
    "assign_next_comparison",
    "create_comparison",
    "create_project",
    "record_imported_judgement",
    "record_judgement",
    "release_expired_leases",
    "revise_judgement",
]
