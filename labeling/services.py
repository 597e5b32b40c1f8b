"""Every write of the labeling app. Each public function is one transaction."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import sql
from core.errors import Conflict, InvalidInput, NotAllowed, NotFound
from labeling.config import validate_project_config
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    Item,
    Judgement,
    Membership,
    Project,
)
from labeling.signals import judgement_recorded

PAIR_CHOICES = {"left", "right", "tie", "skip"}


# --- projects --------------------------------------------------------------------------------
def create_project(
    *,
    slug: str,
    name: str,
    kind: str = Project.Kind.TEXT,
    instructions: str = "",
    overlap: int = 1,
    round_size: int = 100,
    gold_rate: float = 0.0,
    lease_seconds: int = 600,
    config: dict | None = None,
) -> Project:
    """Create a project with a validated config (defaults filled in)."""
    return Project.objects.create(
        slug=slug,
        name=name,
        kind=kind,
        instructions=instructions,
        overlap=overlap,
        round_size=round_size,
        gold_rate=gold_rate,
        lease_seconds=lease_seconds,
        config=validate_project_config(kind, config or {}),
    )


def add_member(*, project: Project, user: AbstractBaseUser) -> Membership:
    """Make ``user`` an annotator of ``project``; adding twice is a no-op."""
    membership, _ = Membership.objects.get_or_create(project=project, user=user)
    return membership


def create_comparison(
    *,
    project: Project,
    items: Sequence[Item],
    gold_ranking: list[int] | str | None = None,
    data: dict | None = None,
) -> Comparison:
    """A comparison of ``items`` in the given order (2..K distinct items of ``project``)."""
    if len(items) < 2:
        raise InvalidInput("A comparison needs at least two items.")
    if len({item.pk for item in items}) != len(items):
        raise InvalidInput("A comparison's items must be distinct.")
    comparison = Comparison.objects.create(
        project=project, gold_ranking=gold_ranking, data=data or {}
    )
    ComparisonItem.objects.bulk_create(
        ComparisonItem(comparison=comparison, item=item, position=i) for i, item in enumerate(items)
    )
    return comparison


# --- assignment ------------------------------------------------------------------------------
# The two calls an annotator makes all day, next and judge, are written in SQL: a handful
# of statements each, no ORM query building. Lock order is always a comparison row first,
# then its leases (a trigger on labeling_assignment keeps Comparison.open_leases, and
# updates the comparison row the lease belongs to).


def assign_next_comparison(
    *, annotator: AbstractBaseUser, project: Project, rng: random.Random | None = None
) -> Assignment | None:
    """Lease one comparison this annotator has not judged and that still needs judgements.

    The annotator's own open lease is returned again if they hold one. Otherwise a
    comparison is chosen whose judgements plus open leases are below ``overlap``; gold
    comparisons (which every annotator sees once, outside ``overlap``) are mixed in at
    ``project.gold_rate``. The candidate is locked with SKIP LOCKED, and PostgreSQL
    re-checks the row's counts under the lock, so concurrent callers never over-assign; a
    caller that finds every candidate locked by others waits briefly and looks again
    rather than being told that nothing is left. Leases that expired are released when
    nothing else is left. Returns None when nothing is left for this annotator.
    """
    rng = rng or random
    want_gold = project.gold_rate > 0 and rng.random() < project.gold_rate
    passes = _PASSES[(True, False) if want_gold else (False, True)]
    params = {"project": project.pk, "annotator": annotator.pk, "overlap": project.overlap}
    deadline = time.monotonic() + ASSIGN_PATIENCE_SECONDS
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                lease = _current_lease(annotator=annotator, project=project, now=now)
                if lease is not None:
                    return lease
                for gold, held_before in passes:
                    row = sql.fetchone(
                        _candidates_sql(gold=gold, held_before=held_before, lock=True), params
                    )
                    if row is not None:
                        return _lease(
                            annotator=annotator,
                            project=project,
                            comparison_id=row[0],
                            item_ids=row[1],
                            now=now,
                            rng=rng,
                        )
                busy = any(
                    sql.fetchone(_candidates_sql(gold=g, held_before=h, lock=False), params)
                    for g, h in passes
                )
        except IntegrityError:
            # The same annotator asked twice at once and the other request won; its lease
            # is what the next pass returns.
            busy = True
        if not busy:
            if release_expired_leases(now=now, project=project):
                continue
            return None
        if time.monotonic() > deadline:
            raise Conflict("Every remaining comparison is being assigned right now; retry.")
        time.sleep(rng.uniform(0.005, 0.03))


# The order in which candidate sets are tried: (gold, held before), by whether gold is
# wanted first. Comparisons never held by this annotator come before ones they let expire.
_PASSES = {
    (True, False): ((True, False), (False, False), (True, True), (False, True)),
    (False, True): ((False, False), (True, False), (False, True), (True, True)),
}

# How long a caller waits for comparisons that other transactions hold locked for a moment.
ASSIGN_PATIENCE_SECONDS = 5.0


def _candidates_sql(*, gold: bool, held_before: bool, lock: bool) -> str:
    """The first comparison this annotator may be given (with its item ids in stored
    order). Gold ones ignore ``overlap``. With held_before False, only ones they never held;
    with True, only ones whose lease they let expire (offered once nothing new is left).
    Locked, the query skips rows others hold and PostgreSQL re-checks the counts on the
    newest row version, so the room it sees is exact."""
    return f"""
        SELECT c.id, (SELECT array_agg(s.item_id ORDER BY s.position)
                      FROM labeling_comparisonitem s WHERE s.comparison_id = c.id)
        FROM labeling_comparison c
        WHERE c.project_id = %(project)s AND c.status = 'open'
          AND c.gold_ranking IS {"NOT NULL" if gold else "NULL"}
          {"" if gold else "AND c.judgement_count + c.open_leases < %(overlap)s"}
          AND NOT EXISTS (SELECT 1 FROM labeling_judgement j
                          WHERE j.comparison_id = c.id AND j.annotator_id = %(annotator)s)
          AND {"" if held_before else "NOT"} EXISTS (
              SELECT 1 FROM labeling_assignment a
              WHERE a.comparison_id = c.id AND a.annotator_id = %(annotator)s)
        ORDER BY c.id LIMIT 1 {"FOR UPDATE OF c SKIP LOCKED" if lock else ""}
    """


def _current_lease(*, annotator, project, now) -> Assignment | None:
    """The annotator's open lease here, if unexpired; an expired one is released. Raises
    NotAllowed for a non-member."""
    row = sql.fetchone(
        """
        SELECT EXISTS (SELECT 1 FROM labeling_membership m
                       WHERE m.project_id = %(project)s AND m.user_id = %(annotator)s),
               a.id, a.comparison_id, a.display_order, a.created_at, a.expires_at
        FROM (SELECT 1) AS one
        LEFT JOIN labeling_assignment a ON a.annotator_id = %(annotator)s
             AND a.project_id = %(project)s AND a.status = 'open'
        """,
        {"project": project.pk, "annotator": annotator.pk},
    )
    member, lease_id, comparison_id, order, created_at, expires_at = row
    if not member:
        raise NotAllowed(f"You are not an annotator of project {project.slug!r}.")
    if lease_id is None:
        return None
    if expires_at > now:
        return Assignment(
            pk=lease_id,
            project=project,
            comparison_id=comparison_id,
            annotator=annotator,
            display_order=json.loads(order),
            status=Assignment.Status.OPEN,
            created_at=created_at,
            expires_at=expires_at,
        )
    sql.fetchone("SELECT id FROM labeling_comparison WHERE id = %s FOR UPDATE", [comparison_id])
    sql.execute(
        "UPDATE labeling_assignment SET status = 'released' WHERE id = %s AND status = 'open'",
        [lease_id],
    )
    return None


def _lease(*, annotator, project, comparison_id, item_ids, now, rng) -> Assignment:
    """Write the lease, under the comparison's row lock. A lease this annotator let expire
    is renewed in place (one row per annotator and comparison)."""
    rng.shuffle(item_ids)  # position bias is real: each annotator sees their own order
    expires_at = now + timedelta(seconds=project.lease_seconds)
    (lease_id,) = sql.fetchone(
        """
        INSERT INTO labeling_assignment
            (project_id, comparison_id, annotator_id, display_order, status, created_at,
             expires_at)
        VALUES (%s, %s, %s, %s::jsonb, 'open', %s, %s)
        ON CONFLICT (annotator_id, comparison_id) DO UPDATE SET
            project_id = EXCLUDED.project_id, display_order = EXCLUDED.display_order,
            status = 'open', created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        RETURNING id
        """,
        [project.pk, comparison_id, annotator.pk, json.dumps(item_ids), now, expires_at],
    )
    return Assignment(
        pk=lease_id,
        project=project,
        comparison_id=comparison_id,
        annotator=annotator,
        display_order=item_ids,
        status=Assignment.Status.OPEN,
        created_at=now,
        expires_at=expires_at,
    )


def release_expired_leases(*, now=None, project: Project | None = None) -> int:
    """Return expired open leases to the pool (of one project, or all); returns how many
    were released. Their comparisons are locked first, in id order, as everywhere else."""
    now = now or timezone.now()
    in_project = "AND a.project_id = %(project)s" if project is not None else ""
    params = {"now": now, "project": project.pk if project is not None else None}
    with transaction.atomic():
        locked = sql.fetchall(
            f"""
            SELECT c.id FROM labeling_comparison c
            WHERE c.id IN (SELECT a.comparison_id FROM labeling_assignment a
                           WHERE a.status = 'open' AND a.expires_at <= %(now)s {in_project})
            ORDER BY c.id FOR UPDATE OF c
            """,
            params,
        )
        if not locked:
            return 0
        return sql.execute(
            """
            UPDATE labeling_assignment SET status = 'released'
            WHERE status = 'open' AND expires_at <= %(now)s AND comparison_id = ANY(%(ids)s)
            """,
            {**params, "ids": [pk for (pk,) in locked]},
        )


# --- judgements ------------------------------------------------------------------------------
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
) -> JudgementResult:
    """Store the annotator's answer to a comparison they hold a lease on.

    ``choice`` is left/right/tie/skip for a pair, in the order the annotator saw the items;
    a K > 2 comparison takes ``ranking`` (its item ids, best first) or ``choice='skip'``.
    Repeating an identical submission returns the stored judgement (created False); a
    different answer to a comparison already judged raises Conflict. A comparison outside
    the annotator's projects (staff: outside every project) is NotFound.
    """
    comparison_id = comparison if isinstance(comparison, int) else comparison.pk
    with transaction.atomic():
        row = sql.fetchone(_JUDGE_SQL, {"comparison": comparison_id, "annotator": annotator.pk})
        if row is None or not (row.member or annotator.is_staff):
            raise NotFound(f"No comparison {comparison_id} in a project you are a member of.")
        project = sql.model_from_row(Project, row)
        if row.lease_id is None:
            raise NotAllowed(
                f"You hold no lease on comparison {comparison_id}; "
                f"ask for one with POST /api/projects/{project.slug}/next/."
            )
        shown = json.loads(row.display_order)
        choice, resolved = _resolve_answer(
            comparison_id=comparison_id, shown=shown, choice=choice, ranking=ranking
        )
        if row.judgement_id is not None:
            return _repeat(row, project, annotator=annotator, choice=choice, ranking=resolved)
        now = timezone.now()
        counts = choice != Judgement.Choice.SKIP and not row.gold
        lease_active = row.lease_status == Assignment.Status.OPEN and row.expires_at > now
        if counts and not lease_active:
            (others,) = sql.fetchone(
                """
                SELECT count(*) FROM labeling_assignment
                WHERE comparison_id = %s AND status = 'open' AND expires_at > %s AND id <> %s
                """,
                [comparison_id, now, row.lease_id],
            )
            if row.judgement_count + others >= project.overlap:
                raise Conflict(
                    f"Your lease on comparison {comparison_id} expired and the comparison "
                    "has been given to others; ask for the next one."
                )
        judgement = Judgement(
            project_id=project.pk,
            comparison_id=comparison_id,
            annotator=annotator,
            choice=choice,
            ranking=resolved,
            shown_order=shown,
            time_spent_ms=time_spent_ms,
            source=Judgement.Source.ANNOTATOR,
            created_at=now,
        )
        complete = counts and row.judgement_count + 1 >= project.overlap
        # One statement: the judgement, its lease done, the comparison's count. The writes
        # after the insert happen only if it stored a row.
        inserted = sql.fetchone(
            """
            WITH judged AS (
                INSERT INTO labeling_judgement (project_id, comparison_id, annotator_id,
                    choice, ranking, shown_order, time_spent_ms, source, created_at)
                VALUES (%(project)s, %(comparison)s, %(annotator)s, %(choice)s,
                    %(ranking)s::jsonb, %(shown)s::jsonb, %(time)s, %(source)s, %(now)s)
                ON CONFLICT (annotator_id, comparison_id) DO NOTHING RETURNING id
            ), lease AS (
                UPDATE labeling_assignment SET status = 'done'
                WHERE id = %(lease)s AND EXISTS (SELECT 1 FROM judged)
            ), counted AS (
                UPDATE labeling_comparison
                SET judgement_count = judgement_count + 1, status = %(status)s
                WHERE id = %(comparison)s AND %(counts)s AND EXISTS (SELECT 1 FROM judged)
            )
            SELECT id FROM judged
            """,
            {
                "project": project.pk,
                "comparison": comparison_id,
                "annotator": annotator.pk,
                "choice": choice,
                "ranking": json.dumps(resolved) if resolved is not None else None,
                "shown": json.dumps(shown),
                "time": time_spent_ms,
                "source": judgement.source,
                "now": now,
                "lease": row.lease_id,
                "status": Comparison.Status.COMPLETE if complete else row.status,
                "counts": counts,
            },
        )
        if inserted is None:
            # The same annotator's identical request, sent twice at once, won the race
            # while this one waited for the row lock (its read predates that commit).
            row = sql.fetchone(_JUDGE_SQL, {"comparison": comparison_id, "annotator": annotator.pk})
            return _repeat(row, project, annotator=annotator, choice=choice, ranking=resolved)
        judgement.pk = inserted.id
        judgement._state.adding = False
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


# One locked read with everything record_judgement decides on (the project's columns first).
_JUDGE_SQL = f"""
    SELECT {sql.model_columns(Project, "p", prefix="p_")},
           c.id AS comparison_id, c.status,
           c.gold_ranking IS NOT NULL AS gold, c.judgement_count,
           EXISTS (SELECT 1 FROM labeling_membership m
                   WHERE m.project_id = c.project_id AND m.user_id = %(annotator)s) AS member,
           a.id AS lease_id, a.status AS lease_status, a.expires_at, a.display_order,
           j.id AS judgement_id, j.choice AS judgement_choice, j.ranking, j.shown_order,
           j.time_spent_ms, j.created_at AS judged_at
    FROM labeling_comparison c
    JOIN labeling_project p ON p.id = c.project_id
    LEFT JOIN labeling_assignment a ON a.comparison_id = c.id AND a.annotator_id = %(annotator)s
    LEFT JOIN labeling_judgement j ON j.comparison_id = c.id AND j.annotator_id = %(annotator)s
    WHERE c.id = %(comparison)s
    FOR UPDATE OF c
"""


def _repeat(row, project, *, annotator, choice, ranking) -> JudgementResult:
    """A second submission to a comparison this annotator judged: the stored judgement if
    it says the same, else Conflict (a judgement cannot be changed)."""
    stored = Judgement(
        pk=row.judgement_id,
        project_id=project.pk,
        comparison_id=row.comparison_id,
        annotator=annotator,
        choice=row.judgement_choice,
        ranking=json.loads(row.ranking) if row.ranking is not None else None,
        shown_order=json.loads(row.shown_order),
        time_spent_ms=row.time_spent_ms,
        created_at=row.judged_at,
    )
    stored._state.adding = False
    if stored.choice == choice and stored.ranking == ranking:
        return JudgementResult(stored, created=False, project=project)
    raise Conflict(
        f"Comparison {row.comparison_id} is already judged by you as "
        f"{stored.choice!r}; a judgement cannot be changed."
    )


def _resolve_answer(*, comparison_id, shown, choice, ranking) -> tuple[str, list[int] | None]:
    """Turn screen-relative input into (choice, item ids best first)."""
    k = len(shown)
    if choice is not None and ranking is not None:
        raise InvalidInput("Send either 'choice' or 'ranking', not both.")
    if choice is None and ranking is None:
        raise InvalidInput("Send 'choice' (left, right, tie or skip) or 'ranking'.")
    if choice is not None:
        if choice not in PAIR_CHOICES:
            raise InvalidInput(f"choice must be one of left, right, tie, skip; got {choice!r}.")
        if choice == "skip":
            return "skip", None
        if k != 2:
            raise InvalidInput(
                f"Comparison {comparison_id} ranks {k} items: send 'ranking' "
                "(its item ids, best first) or choice 'skip'."
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
