"""Leasing comparisons to annotators: the first half of what an annotator does all day.

Written in SQL: a handful of statements per call, no ORM query building. Lock order is
always a comparison row first, then its leases (a trigger on labeling_assignment keeps
Comparison.open_leases, and updates the comparison row the lease belongs to).
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import sql
from core.errors import Conflict, NotAllowed
from labeling import qualification
from labeling.models import Assignment, Comparison, Project

OPEN = Assignment.Status.OPEN.value
RELEASED = Assignment.Status.RELEASED.value
COMPARISON_OPEN = Comparison.Status.OPEN.value


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

    A member still qualifying (labeling/qualification.py) is offered gold comparisons
    only, and one who failed gets NotAllowed with the reason.
    """
    rng = rng or random
    qualifying = qualification.gold_only(annotator=annotator, project=project)
    want_gold = project.gold_rate > 0 and rng.random() < project.gold_rate
    passes = _GOLD_ONLY if qualifying else _PASSES[want_gold]
    params = {"project": project.pk, "annotator": annotator.pk, "overlap": project.overlap}
    deadline = time.monotonic() + ASSIGN_PATIENCE_SECONDS
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                lease = _current_lease(annotator=annotator, project=project, now=now)
                if lease is not None:
                    return lease
                for candidates in passes:
                    row = sql.fetchone(_candidates_sql(candidates, lock=True), params)
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
                    sql.fetchone(_candidates_sql(candidates, lock=False), params)
                    for candidates in passes
                )
        except IntegrityError:
            # The same annotator asked twice at once and the other request won; its lease
            # is what the next pass returns.
            busy = True
        if not busy:
            if release_expired_leases(now=now, project=project):
                continue
            if qualifying:
                raise qualification.no_gold_left(project)
            return None
        if time.monotonic() > deadline:
            raise Conflict("Every remaining comparison is being assigned right now; retry.")
        time.sleep(rng.uniform(0.005, 0.03))


class Candidates(NamedTuple):
    """One set of comparisons an annotator may be given: gold ones or not, and ones they
    never held or ones whose lease they let expire."""

    gold: bool
    held_before: bool


# The order in which candidate sets are tried, keyed by whether gold is wanted this time.
# Comparisons never held by this annotator come before ones they let expire.
_PASSES = {
    True: (
        Candidates(gold=True, held_before=False),
        Candidates(gold=False, held_before=False),
        Candidates(gold=True, held_before=True),
        Candidates(gold=False, held_before=True),
    ),
    False: (
        Candidates(gold=False, held_before=False),
        Candidates(gold=True, held_before=False),
        Candidates(gold=False, held_before=True),
        Candidates(gold=True, held_before=True),
    ),
}

_GOLD_ONLY = (Candidates(gold=True, held_before=False), Candidates(gold=True, held_before=True))

# How long a caller waits for comparisons that other transactions hold locked for a moment.
ASSIGN_PATIENCE_SECONDS = 5.0


def _candidates_sql(candidates: Candidates, *, lock: bool) -> str:
    """The first comparison this annotator may be given (with its item ids in stored
    order). Gold ones ignore ``overlap``. With held_before False, only ones they never held;
    with True, only ones whose lease they let expire (offered once nothing new is left).
    Locked, the query skips rows others hold and PostgreSQL re-checks the counts on the
    newest row version, so the room it sees is exact."""
    gold, held_before = candidates
    return f"""
        SELECT c.id, (SELECT array_agg(s.item_id ORDER BY s.position)
                      FROM labeling_comparisonitem s WHERE s.comparison_id = c.id)
        FROM labeling_comparison c
        WHERE c.project_id = %(project)s AND c.status = '{COMPARISON_OPEN}'
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
        f"""
        SELECT EXISTS (SELECT 1 FROM labeling_membership m
                       WHERE m.project_id = %(project)s AND m.user_id = %(annotator)s),
               a.id, a.comparison_id, a.display_order, a.created_at, a.expires_at
        FROM (SELECT 1) AS one
        LEFT JOIN labeling_assignment a ON a.annotator_id = %(annotator)s
             AND a.project_id = %(project)s AND a.status = '{OPEN}'
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
        f"UPDATE labeling_assignment SET status = '{RELEASED}' WHERE id = %s AND status = '{OPEN}'",
        [lease_id],
    )
    return None


def _lease(*, annotator, project, comparison_id, item_ids, now, rng) -> Assignment:
    """Write the lease, under the comparison's row lock. A lease this annotator let expire
    is renewed in place (one row per annotator and comparison) with the order it had, so
    an answer from a page that still shows the old lease means what it says."""
    rng.shuffle(item_ids)  # position bias is real: each annotator sees their own order
    expires_at = now + timedelta(seconds=project.lease_seconds)
    lease_id, order = sql.fetchone(
        f"""
        INSERT INTO labeling_assignment
            (project_id, comparison_id, annotator_id, display_order, status, created_at,
             expires_at)
        VALUES (%s, %s, %s, %s::jsonb, '{OPEN}', %s, %s)
        ON CONFLICT (annotator_id, comparison_id) DO UPDATE SET
            project_id = EXCLUDED.project_id,
            status = '{OPEN}', created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        RETURNING id, display_order
        """,
        [project.pk, comparison_id, annotator.pk, json.dumps(item_ids), now, expires_at],
    )
    return Assignment(
        pk=lease_id,
        project=project,
        comparison_id=comparison_id,
        annotator=annotator,
        display_order=json.loads(order),
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
                           WHERE a.status = '{OPEN}' AND a.expires_at <= %(now)s {in_project})
            ORDER BY c.id FOR UPDATE OF c
            """,
            params,
        )
        if not locked:
            return 0
        return sql.execute(
            f"""
            UPDATE labeling_assignment SET status = '{RELEASED}'
            WHERE status = '{OPEN}' AND expires_at <= %(now)s AND comparison_id = ANY(%(ids)s)
            """,
            {**params, "ids": [pk for (pk,) in locked]},
        )
