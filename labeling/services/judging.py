"""Recording judgements: the second half of what an annotator does all day."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core import sql
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling import webhooks
from labeling.models import Assignment, Comparison, Judgement, Project, Webhook
from labeling.services.feedback_answers import Feedback, check_feedback, store_edit
from labeling.signals import judgement_recorded

PAIR_CHOICES = {"left", "right", "tie", "skip", "both_bad"}
LEASE_OPEN = Assignment.Status.OPEN.value
LEASE_DONE = Assignment.Status.DONE.value


@dataclass(frozen=True)
class JudgementResult:
    judgement: Judgement
    created: bool
    project: Project


def record_judgement(
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
) -> JudgementResult:
    """Store the annotator's answer to a comparison they hold a lease on.

    ``choice`` is left/right/tie/skip for a pair, in the order the annotator saw the items;
    a K > 2 comparison takes ``ranking`` (its item ids, best first) or ``choice='skip'``;
    ``both_bad`` (either) where the project's form offers it. ``strength``, ``ratings``,
    ``critique`` and ``edit`` (the winner's improved text, stored as a new item) are the
    feedback the project's form asks for (labeling/services/feedback_answers.py; a bad,
    missing or unasked-for part is an InvalidField naming it).
    ``shown_order``, when given, is the order of item ids the answer was given against: an
    answer to an order that is no longer the lease's is a Conflict, never stored reversed.
    Repeating an identical submission returns the stored judgement (created False); a
    different answer to a comparison already judged raises Conflict (revise_judgement
    changes an answer). A comparison outside the annotator's projects (staff: outside
    every project) is NotFound.
    """
    comparison_id = comparison if isinstance(comparison, int) else comparison.pk
    with transaction.atomic():
        row, project = _locked_state(comparison_id=comparison_id, annotator=annotator)
        shown = json.loads(row.display_order)
        if shown_order is not None and list(shown_order) != shown:
            raise Conflict(
                f"Comparison {comparison_id} is shown to you in another order now "
                f"({shown}, not {list(shown_order)}); reload it and answer again."
            )
        choice, resolved, feedback = checked_answer(
            project=project,
            comparison_id=comparison_id,
            shown=shown,
            choice=choice,
            ranking=ranking,
            feedback=dict(strength=strength, ratings=ratings, critique=critique, edit=edit),
        )
        if row.judgement_id is not None:
            return _repeat(row, project, annotator=annotator, answer=(choice, resolved, feedback))
        if row.status == Comparison.Status.CLOSED:
            raise Conflict(
                f"Comparison {comparison_id} is closed (an item of it was removed, say); "
                "ask for the next one."
            )
        now = timezone.now()
        counts = choice != Judgement.Choice.SKIP and not row.gold
        if counts:
            _check_room_after_expiry(row, project, now=now)
        edited = None
        if feedback.edit is not None:
            edited = store_edit(project_id=project.pk, winner_id=resolved[0], text=feedback.edit)
        judgement = Judgement(
            project_id=project.pk,
            comparison_id=comparison_id,
            annotator=annotator,
            choice=choice,
            ranking=resolved,
            shown_order=shown,
            time_spent_ms=time_spent_ms,
            source=Judgement.Source.ANNOTATOR,
            strength=feedback.strength,
            ratings=feedback.ratings,
            critique=feedback.critique,
            edit=edited,
            created_at=now,
        )
        complete = counts and row.judgement_count + 1 >= project.overlap
        status = Comparison.Status.COMPLETE if complete else row.status
        if not _insert(judgement, lease_id=row.lease_id, counts=counts, status=status):
            # The same annotator's identical request, sent twice at once, won the race
            # while this one waited for the row lock (its read predates that commit).
            if edited is not None:
                edited.delete()
            row, _ = _locked_state(comparison_id=comparison_id, annotator=annotator)
            return _repeat(row, project, annotator=annotator, answer=(choice, resolved, feedback))
        if project.has_webhooks:  # read with the row lock: without webhooks, no query here
            webhooks.emit(
                project_id=project.pk,
                event=Webhook.Event.JUDGEMENT_CREATED,
                payload=webhooks.judgement_payload(judgement),
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
        return JudgementResult(judgement, created=True, project=project)


def _locked_state(*, comparison_id: int, annotator: AbstractBaseUser):
    """(the locked read record_judgement decides on, the project). NotFound outside the
    annotator's projects; NotAllowed without a lease on the comparison."""
    row = sql.fetchone(_JUDGE_SQL, {"comparison": comparison_id, "annotator": annotator.pk})
    if row is None or not (row.member or annotator.is_staff):
        raise NotFound(f"No comparison {comparison_id} in a project you are a member of.")
    project = sql.model_from_row(Project, row)
    if row.lease_id is None:
        raise NotAllowed(
            f"You hold no lease on comparison {comparison_id}; "
            f"ask for one with POST /api/projects/{project.slug}/next/."
        )
    return row, project


def _check_room_after_expiry(row, project: Project, *, now) -> None:
    """A judgement that counts towards ``overlap`` on an expired lease is taken only while
    the comparison has room: Conflict once it has been given to others."""
    if row.lease_status == LEASE_OPEN and row.expires_at > now:
        return
    (others,) = sql.fetchone(
        f"""
        SELECT count(*) FROM labeling_assignment
        WHERE comparison_id = %s AND status = '{LEASE_OPEN}' AND expires_at > %s AND id <> %s
        """,
        [row.comparison_id, now, row.lease_id],
    )
    if row.judgement_count + others >= project.overlap:
        raise Conflict(
            f"Your lease on comparison {row.comparison_id} expired and the comparison "
            "has been given to others; ask for the next one."
        )


# One statement: the judgement, its lease done, the comparison's count. The writes after
# the insert happen only if it stored a row.
_INSERT_SQL = f"""
    WITH judged AS (
        INSERT INTO labeling_judgement (project_id, comparison_id, annotator_id,
            choice, ranking, shown_order, time_spent_ms, source, strength, ratings,
            critique, edit_id, created_at)
        VALUES (%(project)s, %(comparison)s, %(annotator)s, %(choice)s,
            %(ranking)s::jsonb, %(shown)s::jsonb, %(time)s, %(source)s, %(strength)s,
            %(ratings)s::jsonb, %(critique)s, %(edit)s, %(now)s)
        ON CONFLICT (annotator_id, comparison_id) DO NOTHING RETURNING id
    ), lease AS (
        UPDATE labeling_assignment SET status = '{LEASE_DONE}'
        WHERE id = %(lease)s AND EXISTS (SELECT 1 FROM judged)
    ), counted AS (
        UPDATE labeling_comparison
        SET judgement_count = judgement_count + 1, status = %(status)s
        WHERE id = %(comparison)s AND %(counts)s AND EXISTS (SELECT 1 FROM judged)
    )
    SELECT id FROM judged
"""


def _insert(judgement: Judgement, *, lease_id: int, counts: bool, status: str) -> bool:
    """Store ``judgement``, close its lease and, if it ``counts``, count it on its
    comparison (now of ``status``). False when this annotator's judgement already exists."""
    inserted = sql.fetchone(
        _INSERT_SQL,
        {
            "project": judgement.project_id,
            "comparison": judgement.comparison_id,
            "annotator": judgement.annotator.pk,
            "choice": judgement.choice,
            "ranking": json.dumps(judgement.ranking) if judgement.ranking is not None else None,
            "shown": json.dumps(judgement.shown_order),
            "time": judgement.time_spent_ms,
            "source": judgement.source,
            "strength": judgement.strength,
            "ratings": json.dumps(judgement.ratings) if judgement.ratings is not None else None,
            "critique": judgement.critique,
            "edit": judgement.edit_id,
            "now": judgement.created_at,
            "lease": lease_id,
            "status": status,
            "counts": counts,
        },
    )
    if inserted is None:
        return False
    judgement.pk = inserted.id
    judgement._state.adding = False
    return True


# One locked read with everything record_judgement decides on (the project's columns first).
_JUDGE_SQL = f"""
    SELECT {sql.model_columns(Project, "p", prefix="p_")},
           c.id AS comparison_id, c.status,
           c.gold_ranking IS NOT NULL AS gold, c.judgement_count,
           EXISTS (SELECT 1 FROM labeling_membership m
                   WHERE m.project_id = c.project_id AND m.user_id = %(annotator)s) AS member,
           a.id AS lease_id, a.status AS lease_status, a.expires_at, a.display_order,
           j.id AS judgement_id
    FROM labeling_comparison c
    JOIN labeling_project p ON p.id = c.project_id
    LEFT JOIN labeling_assignment a ON a.comparison_id = c.id AND a.annotator_id = %(annotator)s
    LEFT JOIN labeling_judgement j ON j.comparison_id = c.id AND j.annotator_id = %(annotator)s
    WHERE c.id = %(comparison)s
    FOR UPDATE OF c
"""


def _repeat(row, project, *, annotator, answer: tuple) -> JudgementResult:
    """A second submission to a comparison this annotator judged: the stored judgement if
    it says the same (``answer``: choice, ranking and Feedback), else Conflict (a judgement
    is changed by revise_judgement)."""
    # rare (a retried request, say): the stored answer is read only now, not on every call
    stored = Judgement.objects.select_related("edit").get(pk=row.judgement_id)
    if (stored.choice, stored.ranking, Feedback.of(stored)) == answer:
        return JudgementResult(stored, created=False, project=project)
    raise Conflict(
        f"Comparison {row.comparison_id} is already judged by you as "
        f"{stored.choice!r}; a judgement cannot be changed by POST. To revise it (within "
        f"the project's revise_window_s), send the new answer with "
        f"PUT /api/comparisons/{row.comparison_id}/judgement/."
    )


def checked_answer(
    *, project: Project, comparison_id: int, shown: list[int], choice, ranking, feedback: dict
) -> tuple[str, list[int] | None, Feedback]:
    """(choice, item ids best first, the checked Feedback) of an answer to a comparison of
    the items ``shown``: resolve_answer, then the project's form (check_feedback) on the
    ``feedback`` parts as sent (strength, ratings, critique, edit)."""
    choice, resolved = resolve_answer(
        comparison_id=comparison_id, shown=shown, choice=choice, ranking=ranking
    )
    checked = check_feedback(project=project, choice=choice, shown=shown, **feedback)
    return choice, resolved, checked


def resolve_answer(*, comparison_id, shown, choice, ranking) -> tuple[str, list[int] | None]:
    """Turn screen-relative input into (choice, item ids best first)."""
    k = len(shown)
    if choice is not None and ranking is not None:
        raise InvalidInput("Send either 'choice' or 'ranking', not both.")
    if choice is None and ranking is None:
        raise InvalidInput("Send 'choice' (left, right, tie or skip) or 'ranking'.")
    if choice is not None:
        if choice not in PAIR_CHOICES:
            raise InvalidInput(
                f"choice must be one of left, right, tie, skip, both_bad; got {choice!r}."
            )
        if choice in ("skip", "both_bad"):
            return choice, None
        if k != 2:
            raise InvalidInput(
                f"Comparison {comparison_id} ranks {k} items: send 'ranking' "
                "(its item ids, best first) or choice 'skip' (or 'both_bad' where offered)."
            )
        if choice == "tie":
            return "tie", None
        left, right = shown
        return choice, [left, right] if choice == "left" else [right, left]
    if not isinstance(ranking, list) or sorted(ranking) != sorted(shown):
        raise InvalidInput(
            f"ranking must list each of this comparison's item ids {sorted(shown)} once, "
            f"best first; got {ranking!r}."
        )
    return "ranking", list(ranking)


def record_imported_judgement(
    *, importer: AbstractBaseUser, comparison: Comparison, ranking: list[int]
) -> Judgement:
    """An already-made judgement brought in by an import; the importer is its author."""
    return Judgement.objects.create(
        project_id=comparison.project_id,
        comparison=comparison,
        annotator=importer,
        choice=Judgement.Choice.LEFT if len(ranking) == 2 else Judgement.Choice.RANKING,
        ranking=ranking,
        shown_order=ranking,
        source=Judgement.Source.IMPORT,
    )
