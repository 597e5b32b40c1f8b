"""Every read of the labeling app that is more than a one-liner."""

from __future__ import annotations

import json
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from core import sql
from core.api.permissions import require_permission
from core.errors import NotFound
from labeling.models import Assignment, Comparison, Item, Judgement, Membership, Project


# --- access ----------------------------------------------------------------------------------
def visible_projects(user: AbstractBaseUser) -> QuerySet[Project]:
    """Staff see every project; anyone else the projects they are a member of."""
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def access_project(user: AbstractBaseUser, slug: str) -> Project:
    """The project ``slug`` if ``user`` may see it; NotFound otherwise (not 403: a
    non-member learns nothing about which projects exist). One query, on every API call."""
    row = sql.fetchone(
        f"""
        SELECT {sql.model_columns(Project, "p")} FROM labeling_project p
        WHERE p.slug = %(slug)s AND (%(staff)s OR EXISTS (
            SELECT 1 FROM labeling_membership m
            WHERE m.project_id = p.id AND m.user_id = %(user)s))
        """,
        {"slug": slug, "staff": user.is_staff, "user": user.pk},
    )
    if row is None:
        raise NotFound(f"No project {slug!r} that you are a member of.")
    return sql.model_from_row(Project, row)


def access_project_for(user: AbstractBaseUser, slug: str, *, permission: str, what: str) -> Project:
    """The project ``slug`` for staff with ``permission`` ("labeling.export_judgements");
    a member or staff without it get NotAllowed (403) saying ``what`` they may not do,
    anyone else NotFound."""
    project = access_project(user, slug)
    require_permission(user, permission, what)
    return project


def project_by_id(project_id: int) -> Project:
    """The project, in one query without the ORM's query building (no access check)."""
    row = sql.fetchone(
        f"SELECT {sql.model_columns(Project, 'p')} FROM labeling_project p WHERE p.id = %s",
        [project_id],
    )
    if row is None:
        raise NotFound(f"No project {project_id}.")
    return sql.model_from_row(Project, row)


def count_judgements_since(*, project_id: int, since: datetime | None, enough: int) -> int:
    """How many judgements other than skips ``project_id`` received after ``since`` (all,
    for None), counted up to ``enough``: an index range scan that stops there."""
    (count,) = sql.fetchone(
        f"""
        SELECT count(*) FROM (
            SELECT 1 FROM labeling_judgement j
            WHERE j.project_id = %(project)s AND j.choice <> '{Judgement.Choice.SKIP.value}'
              AND j.created_at > COALESCE(%(since)s, '-infinity'::timestamptz)
            LIMIT %(enough)s) AS recent
        """,
        {"project": project_id, "since": since, "enough": enough},
    )
    return count


def is_member(user: AbstractBaseUser, project: Project) -> bool:
    return Membership.objects.filter(project=project, user=user).exists()


# --- the annotator's view --------------------------------------------------------------------
def assignment_items(assignment: Assignment) -> list[Item]:
    """The lease's items in the order this annotator sees them."""
    rows = sql.fetchall(
        f"SELECT {sql.model_columns(Item, 'i')} FROM labeling_item i WHERE i.id = ANY(%s)",
        [list(assignment.display_order)],
    )
    by_id = {row.id: sql.model_from_row(Item, row) for row in rows}
    return [by_id[pk] for pk in assignment.display_order]


# Open comparisons minus the open ones this annotator judged: an index-only count and a
# walk over their own judgements, instead of an anti-join per open comparison.
_PROGRESS_SQL = f"""
    SELECT (SELECT count(*) FROM labeling_judgement j
            WHERE j.annotator_id = %(user)s AND j.project_id = %(project)s) AS judged,
           (SELECT count(*) FROM labeling_comparison c
            WHERE c.project_id = %(project)s AND c.status = '{Comparison.Status.OPEN.value}')
           - (SELECT count(*) FROM labeling_judgement j
              JOIN labeling_comparison c ON c.id = j.comparison_id
              WHERE j.annotator_id = %(user)s AND j.project_id = %(project)s
                AND c.status = '{Comparison.Status.OPEN.value}') AS remaining
"""


def annotator_progress(annotator: AbstractBaseUser, project: Project) -> dict[str, int]:
    """How many comparisons this annotator has judged here, and how many open ones they
    have not judged yet (a display figure: others' open leases are not subtracted)."""
    row = sql.fetchone(_PROGRESS_SQL, {"project": project.pk, "user": annotator.pk})
    return {"judged": row.judged, "remaining": row.remaining}


def lease_view(
    annotator: AbstractBaseUser, project: Project, assignment: Assignment
) -> tuple[list[Item], dict[str, int]]:
    """What ``next`` shows: the lease's items (with a conversation's messages) in this
    annotator's order, and their progress, in one query."""
    rows = sql.fetchall(
        f"""
        SELECT i.id, i.prompt, i.text, i.prompt_messages, i.messages, i.clip, i.poster,
               progress.judged, progress.remaining
        FROM labeling_item i, ({_PROGRESS_SQL}) AS progress
        WHERE i.id = ANY(%(items)s)
        """,
        {"project": project.pk, "user": annotator.pk, "items": list(assignment.display_order)},
    )
    by_id = {  # jsonb comes back as text (core/sql.py)
        row.id: Item(
            id=row.id,
            prompt=row.prompt,
            text=row.text,
            prompt_messages=json.loads(row.prompt_messages) if row.prompt_messages else None,
            messages=json.loads(row.messages) if row.messages else None,
            clip=row.clip,
            poster=row.poster,
        )
        for row in rows
    }
    progress = {"judged": rows[0].judged, "remaining": rows[0].remaining}
    return [by_id[pk] for pk in assignment.display_order], progress
