"""Revising a judgement: an annotator changes their answer shortly after giving it.

The judgement row always holds the latest answer (exports, stats and training read it);
each answer it replaces is kept as a JudgementRevision. Lock order as everywhere: the
comparison row first.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Conflict, NotAllowed, NotFound
from labeling.config import revise_window_s
from labeling.models import Comparison, Judgement, JudgementRevision, Membership, Project
from labeling.services.feedback_answers import Feedback, store_edit
from labeling.services.judging import checked_answer
from labeling.signals import judgement_recorded


@dataclass(frozen=True)
class RevisionResult:
    judgement: Judgement
    revised: bool  # False when the answer sent was the stored one
    project: Project


def revise_judgement(
    *,
    annotator: AbstractBaseUser,
    comparison: Comparison | int,
    choice: str | None = None,
    ranking: list[int] | None = None,
    time_spent_ms: int | None = None,
    shown_order: list[int] | None = None,
    strength: str | None = None,
    ratings: dict | None = None,
    critique: str | None = None,
    edit: str | None = None,
) -> RevisionResult:
    """Replace the annotator's answer to ``comparison`` with a new one, given as to
    record_judgement (feedback included: the new answer replaces all of the old, and the
    revision keeps the old feedback, its edit by item id) and against the order the first
    answer was given in. An unchanged edit text keeps its edit item; a new one is a new item.

    Allowed within the project's ``revise_window_s`` seconds of the first answer; later
    it is a Conflict naming the window. An answer that says what is stored changes
    nothing (revised False, no revision row), inside the window or after. The comparison's
    judgement_count and status follow: a skip revised into an answer counts (and may
    complete the comparison), an answer revised into a skip stops counting (and may reopen
    it); on gold comparisons nothing counts, as when judging. NotFound outside the
    annotator's projects or when they have not judged the comparison; NotAllowed for an
    imported judgement; Conflict on a closed comparison or a stale ``shown_order``.
    """
    comparison_id = comparison if isinstance(comparison, int) else comparison.pk
    with transaction.atomic():
        row = (
            Comparison.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(pk=comparison_id)
            .first()
        )
        if row is None or not (
            annotator.is_staff
            or Membership.objects.filter(project_id=row.project_id, user=annotator).exists()
        ):
            raise NotFound(f"No comparison {comparison_id} in a project you are a member of.")
        project = row.project
        judgement = (
            Judgement.objects.select_related("edit")
            .filter(comparison_id=comparison_id, annotator=annotator)
            .first()
        )
        if judgement is None:
            raise NotFound(
                f"You have not judged comparison {comparison_id}, so there is no answer of "
                f"yours to revise; judge it with POST /api/comparisons/{comparison_id}/judgement/."
            )
        if judgement.source != Judgement.Source.ANNOTATOR:
            raise NotAllowed(
                f"Judgement {judgement.pk} was imported, not given on this site; "
                "it cannot be revised (import the corrected line instead)."
            )
        shown = list(judgement.shown_order)
        if shown_order is not None and list(shown_order) != shown:
            raise Conflict(
                f"You judged comparison {comparison_id} with its items in the order {shown}, "
                f"not {list(shown_order)}; reload it and answer again."
            )
        choice, resolved, feedback = checked_answer(
            project=project,
            comparison_id=comparison_id,
            shown=shown,
            choice=choice,
            ranking=ranking,
            feedback=dict(strength=strength, ratings=ratings, critique=critique, edit=edit),
        )
        was = Feedback.of(judgement)
        if (judgement.choice, judgement.ranking, was) == (choice, resolved, feedback):
            return RevisionResult(judgement, revised=False, project=project)
        now = timezone.now()
        _check_window(judgement, project, now=now)
        if row.status == Comparison.Status.CLOSED:
            raise Conflict(
                f"Comparison {comparison_id} is closed (an item of it was removed, say); "
                "its answers can no longer be revised."
            )
        JudgementRevision.objects.create(
            judgement=judgement,
            choice=judgement.choice,
            ranking=judgement.ranking,
            shown_order=judgement.shown_order,
            time_spent_ms=judgement.time_spent_ms,
            feedback={
                "strength": judgement.strength,
                "ratings": judgement.ratings,
                "critique": judgement.critique,
                "edit": judgement.edit_id,
            },
            answered_at=judgement.revised_at or judgement.created_at,
            revised_at=now,
        )
        _recount(row, was=judgement.choice, now_is=choice, overlap=project.overlap)
        if feedback.edit is None:
            judgement.edit = None
        elif feedback.edit != was.edit or resolved[0] != judgement.edit.data.get("edit_of"):
            judgement.edit = store_edit(
                project_id=project.pk, winner_id=resolved[0], text=feedback.edit
            )
        judgement.choice, judgement.ranking = choice, resolved
        judgement.strength, judgement.ratings = feedback.strength, feedback.ratings
        judgement.critique = feedback.critique
        judgement.time_spent_ms, judgement.revised_at = time_spent_ms, now
        judgement.save(
            update_fields=[
                "choice",
                "ranking",
                "strength",
                "ratings",
                "critique",
                "edit",
                "time_spent_ms",
                "revised_at",
            ]
        )
        if choice != Judgement.Choice.SKIP:
            transaction.on_commit(
                lambda: judgement_recorded.send_robust(
                    sender=Judgement,
                    project_id=project.pk,
                    project=project,
                    judgement_id=judgement.pk,
                )
            )
        return RevisionResult(judgement, revised=True, project=project)


def _check_window(judgement: Judgement, project: Project, *, now) -> None:
    """Conflict, naming the window, unless ``judgement`` is within the project's
    revise_window_s of its first answer."""
    window = revise_window_s(project.kind, project.config)
    if window == 0:
        raise Conflict(
            f"Answers in project {project.slug!r} cannot be revised: its revise_window_s is 0."
        )
    age = (now - judgement.created_at).total_seconds()
    if age > window:
        raise Conflict(
            f"You answered comparison {judgement.comparison_id} {age:.0f} s ago; an answer "
            f"can be revised within revise_window_s = {window} s of answering in project "
            f"{project.slug!r}. The answer stays {judgement.choice!r}."
        )


def _recount(comparison: Comparison, *, was: str, now_is: str, overlap: int) -> None:
    """Keep the comparison's judgement_count (answers other than skips, gold ones never
    counted) and its open/complete status right when one answer changes from ``was`` to
    ``now_is``. Call holding the comparison's row lock."""
    if comparison.gold_ranking is not None:
        return
    change = int(now_is != Judgement.Choice.SKIP) - int(was != Judgement.Choice.SKIP)
    if change == 0:
        return
    count = comparison.judgement_count + change
    status = comparison.status
    if status == Comparison.Status.OPEN and count >= overlap:
        status = Comparison.Status.COMPLETE
    elif status == Comparison.Status.COMPLETE and count < overlap:
        status = Comparison.Status.OPEN
    Comparison.objects.filter(pk=comparison.pk).update(
        judgement_count=F("judgement_count") + change, status=status
    )
