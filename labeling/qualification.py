"""Qualification: a project's new member first answers ``gold`` gold comparisons, and
gets no others unless at least ``min_accuracy`` of those answers were right.

Config ``qualification`` {"gold": n, "min_accuracy": x} turns it on ({} is off). A member
stands ``pending`` until their n-th gold answer, then ``passed`` or ``failed`` (decided at
their next ``next``). Staff may set ``waived`` (qualified whatever the score),
``blocked``, or ``pending`` (decided again from the same gold answers, after a change of
the bar). A skip counts as a wrong answer: nobody qualifies by skipping. While pending,
``next`` offers gold comparisons only; failed or blocked, it answers 403 with the reason.
Only members who passed or were waived train the models (:func:`unqualified_annotators`,
which ``preferences()`` leaves out).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from core import sql
from core.errors import InvalidInput, NotAllowed
from labeling.config import qualification_of
from labeling.models import Judgement, Membership, Project

Q = Membership.Qualification
TRAINS = (Q.PASSED, Q.WAIVED)

# An annotator's gold answers in a project and how many were right (a tie or the gold
# ranking's first item, as the stats count them; a skip is never right).
_GOLD_SCORE_SQL = f"""
SELECT count(*) AS judged,
       count(*) FILTER (WHERE
           CASE WHEN j.choice = '{Judgement.Choice.TIE.value}' THEN 'tie'
                ELSE j.ranking ->> 0 END
         = CASE WHEN jsonb_typeof(c.gold_ranking) = 'string' THEN c.gold_ranking #>> '{{}}'
                ELSE c.gold_ranking ->> 0 END) AS right_answers
FROM labeling_judgement j JOIN labeling_comparison c ON c.id = j.comparison_id
WHERE j.project_id = %(project)s AND j.annotator_id = %(annotator)s
  AND c.gold_ranking IS NOT NULL
"""


def gold_only(*, annotator: AbstractBaseUser, project: Project) -> bool:
    """Whether ``annotator`` may be offered gold comparisons only (still qualifying).
    NotAllowed (403, with the reason) when they failed or staff blocked them. Costs no
    query for a project without qualification."""
    rule = qualification_of(project.config)
    if not rule:
        return False
    standing = (
        Membership.objects.filter(project=project, user=annotator)
        .values_list("qualification", "qualification_accuracy")
        .first()
    )
    if standing is None:  # staff who are not members get no leases anyway
        return False
    status, accuracy = standing
    if status == Q.PENDING:
        judged, right = sql.fetchone(
            _GOLD_SCORE_SQL, {"project": project.pk, "annotator": annotator.pk}
        )
        if judged < rule["gold"]:
            return True
        accuracy = right / judged
        status = Q.PASSED if accuracy >= rule["min_accuracy"] else Q.FAILED
        Membership.objects.filter(project=project, user=annotator, qualification=Q.PENDING).update(
            qualification=status, qualification_accuracy=accuracy
        )
    if status == Q.FAILED:
        raise NotAllowed(
            f"You answered {accuracy:.0%} of this project's qualification comparisons "
            f"right; it needs {rule['min_accuracy']:.0%}. You get no more comparisons and "
            "your judgements are not used for training until staff review your membership."
        )
    if status == Q.BLOCKED:
        raise NotAllowed(
            "Staff have paused your work on this project; ask them if you think it is a mistake."
        )
    return False


def no_gold_left(project: Project) -> NotAllowed:
    """The 403 for a member still qualifying when no gold comparison is left for them."""
    rule = qualification_of(project.config)
    return NotAllowed(
        f"This project qualifies new annotators on {rule['gold']} gold comparisons, and "
        "none is left for you. Staff: add gold comparisons, or waive your qualification."
    )


def unqualified_annotators(project: Project) -> list[int]:
    """Members whose judgements do not train (none when the project has no qualification)."""
    if not qualification_of(project.config):
        return []
    return list(
        Membership.objects.filter(project=project)
        .exclude(qualification__in=TRAINS)
        .values_list("user_id", flat=True)
    )


def set_qualification(*, project: Project, user: AbstractBaseUser, status: str) -> Membership:
    """Staff's override: ``waived``, ``blocked``, or ``pending`` (decided again from the
    member's gold answers: after a change of ``min_accuracy``, say)."""
    allowed = (Q.WAIVED, Q.BLOCKED, Q.PENDING)
    if status not in allowed:
        raise InvalidInput(f"qualification must be one of {', '.join(allowed)}; got {status!r}.")
    membership = Membership.objects.get(project=project, user=user)
    membership.qualification = status
    if status == Q.PENDING:
        membership.qualification_accuracy = None
    membership.save(update_fields=["qualification", "qualification_accuracy"])
    return membership
