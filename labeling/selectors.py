"""Every read of the labeling app that is more than a one-liner."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import BinaryIO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.db.models.fields.files import FieldFile

from core import sql
from core.api.permissions import require_permission
from core.errors import NotFound
from labeling.models import Assignment, Comparison, Item, Judgement, Membership, Project
from labeling.preferences import preferences


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
    """What ``next`` shows: the lease's items in this annotator's order, and their
    progress, in one query."""
    rows = sql.fetchall(
        f"""
        SELECT i.id, i.prompt, i.text, i.clip, i.poster, progress.judged, progress.remaining
        FROM labeling_item i, ({_PROGRESS_SQL}) AS progress
        WHERE i.id = ANY(%(items)s)
        """,
        {"project": project.pk, "user": annotator.pk, "items": list(assignment.display_order)},
    )
    by_id = {
        row.id: Item(id=row.id, prompt=row.prompt, text=row.text, clip=row.clip, poster=row.poster)
        for row in rows
    }
    progress = {"judged": rows[0].judged, "remaining": rows[0].remaining}
    return [by_id[pk] for pk in assignment.display_order], progress


# --- export ----------------------------------------------------------------------------------
# Which exports fit which kind of project; the first is the default.
EXPORT_FORMATS = {
    Project.Kind.TEXT: ("trl", "full"),
    Project.Kind.TRAJECTORY: ("full", "segments"),
}


def _items_by_id(project: Project) -> dict[int, Item]:
    return {
        item.pk: item
        for item in Item.objects.filter(project=project).only(
            "pk", "prompt", "text", "clip", "payload", "data"
        )
    }


def export_trl(project: Project) -> Iterator[dict]:
    """Preference pairs as TRL's trainers read them: {prompt, chosen, rejected}.

    A ranking of K items gives all C(K, 2) pairs; ties and skips give none; gold answers
    are not exported. Each judgement contributes its own pairs, so a comparison judged by
    three annotators appears up to three times (TRL averages over them)."""
    items = _items_by_id(project)
    for pair in preferences(project, ties=False):
        yield {
            "prompt": items[pair.a_id].prompt,
            "chosen": items[pair.a_id].text,
            "rejected": items[pair.b_id].text,
        }


def _judgements_for_export(project: Project) -> QuerySet[Judgement]:
    return (
        Judgement.objects.filter(project=project)
        .select_related("annotator", "comparison")
        .order_by("pk")
    )


def _as_is(path: str) -> str:
    return path


def export_full(project: Project, *, absolute_url: Callable[[str], str] = _as_is) -> Iterator[dict]:
    """One line per judgement: who, what they saw, what they answered, how long it took.

    A text project's items are {id, prompt, text}; a trajectory project's are {id,
    episode_seed, start, policy_version, true_return, segment_url, clip_url}, None where
    the item lacks it; each URL is ``absolute_url`` of the file's path."""
    items = _items_by_id(project)
    describe = _trajectory_item if project.kind == Project.Kind.TRAJECTORY else _text_item
    for judgement in _judgements_for_export(project):
        yield {
            "judgement_id": judgement.pk,
            "comparison_id": judgement.comparison_id,
            "annotator": judgement.annotator.get_username(),
            "source": judgement.source,
            "choice": judgement.choice,
            "ranking": judgement.ranking,
            "shown_order": judgement.shown_order,
            "items": [  # an item deleted since is left out
                describe(items[pk], absolute_url) for pk in judgement.shown_order if pk in items
            ],
            "time_spent_ms": judgement.time_spent_ms,
            "gold": judgement.comparison.gold_ranking,
            "created_at": judgement.created_at.isoformat(),
            # the answer above is the latest; its history is in the admin
            "revised_at": judgement.revised_at.isoformat() if judgement.revised_at else None,
        }


def _text_item(item: Item, absolute_url: Callable[[str], str]) -> dict:
    return {"id": item.pk, "prompt": item.prompt, "text": item.text}


def _trajectory_item(item: Item, absolute_url: Callable[[str], str]) -> dict:
    return {
        "id": item.pk,
        **_provenance(item),
        "segment_url": _file_url(item.payload, absolute_url),
        "clip_url": _file_url(item.clip, absolute_url),
    }


def _provenance(item: Item) -> dict:
    """What training.kinds.trajectory records of a segment: where it came from."""
    keys = ("episode_seed", "start", "policy_version", "true_return")
    return {key: item.data.get(key) for key in keys}


def _file_url(stored: FieldFile, absolute_url: Callable[[str], str]) -> str | None:
    return absolute_url(stored.url) if stored else None


SEGMENTS_README = """\
Preference data of project {slug}, as `format=segments` exports it: loadable with
numpy alone.

pairs.jsonl
    One line per judged pair: {{"a": item id, "b": item id, "p": P(a better than b),
    "annotator": username}}. p = 1.0 when a was ranked above b (a ranking of K items
    gives its K(K-1)/2 pairs, better first) and 0.5 for a tie; skips give no line. Each
    judgement gives its own lines, so a pair judged by three annotators appears three
    times. Pairs with an item that has no segment file are left out.

items.jsonl
    One line per item in pairs.jsonl: {{"id", "episode_seed", "start", "policy_version",
    "true_return", "file"}}. The segment is steps start .. start+T-1 of the episode
    that began with env.reset(seed=episode_seed), played by policy version
    policy_version (0: the initial policy).

items/<id>.npz
    The segment shown as item <id>. numpy.load(path) holds
        observations  (T, obs_dim) float32   o_t, encoded (a Discrete observation one-hot)
        actions       (T,) int64 for Discrete actions, (T, act_dim) float32 for Box
        true_rewards  (T,) float32           the environment's reward; annotators never
                                             saw it, and a reward model must not see it

    import json, numpy as np
    pairs = [json.loads(line) for line in open("pairs.jsonl")]
    a = np.load(f"items/{{pairs[0]['a']}}.npz")
    a["observations"].shape, a["actions"].shape
"""


def export_segments(project: Project, into: BinaryIO) -> None:
    """Write a zip of ``project``'s preferences over trajectory segments into ``into``:
    pairs.jsonl (``preferences``, ties at ½), items.jsonl, items/<id>.npz (each item's
    stored segment, copied in chunks) and README.txt describing them."""
    with_segment = {
        item.pk: item
        for item in Item.objects.filter(project=project)
        .exclude(payload="")
        .only("pk", "payload", "data")
    }
    pairs = [
        pair
        for pair in preferences(project)
        if pair.a_id in with_segment and pair.b_id in with_segment
    ]
    usernames = dict(
        get_user_model()
        .objects.filter(pk__in={pair.annotator_id for pair in pairs})
        .values_list("pk", get_user_model().USERNAME_FIELD)
    )
    in_pairs = sorted({pk for pair in pairs for pk in (pair.a_id, pair.b_id)})
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", SEGMENTS_README.format(slug=project.slug))
        archive.writestr(
            "pairs.jsonl",
            _jsonl(
                {"a": pair.a_id, "b": pair.b_id, "p": pair.p,
                 "annotator": usernames[pair.annotator_id]}
                for pair in pairs
            ),
        )  # fmt: skip
        archive.writestr(
            "items.jsonl",
            _jsonl(
                {"id": pk, **_provenance(with_segment[pk]), "file": f"items/{pk}.npz"}
                for pk in in_pairs
            ),
        )
        for pk in in_pairs:
            # .npz segments are compressed already: stored as they are
            entry = zipfile.ZipInfo(f"items/{pk}.npz", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_STORED
            with (
                default_storage.open(with_segment[pk].payload.name, "rb") as source,
                archive.open(entry, "w") as target,
            ):
                shutil.copyfileobj(source, target)


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
