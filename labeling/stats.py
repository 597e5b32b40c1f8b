"""A project's statistics: counts, each annotator's agreement with the others' majority,
gold accuracy, and inter-annotator agreement (Cohen's κ per pair, Fleiss' κ, Krippendorff's
α: labeling.agreement).

PostgreSQL reads each judgement once, in one statement that returns them packed in three
byte strings (annotator, comparison, answer), and numpy counts them. At 1M judgements of
pairs on 2 cores that is 1.0-1.4 s cold (0.2 s of it numpy), where the one SQL statement
that grouped by comparison and compared answers took 6-7 s (each of those steps alone took
0.7-0.9 s in SQL). K > 2 rankings cost more: their places are worked out row by row,
about 0.7 s per 100k judgements. The answer is cached per project until a judgement
arrives or is revised; one computation per project runs at a time (concurrent callers
wait for it and share its result), and no statement runs longer than STATEMENT_TIMEOUT_S.
"""

from __future__ import annotations

import json
import time

import numpy as np
import psycopg.errors
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import OperationalError, connection, transaction

from core import sql
from core.api.permissions import may
from core.errors import DomainError
from labeling import agreement
from labeling.models import Comparison, Judgement, Project

CACHE_SECONDS = 300  # also bounds how long a deleted judgement stays counted
STATEMENT_TIMEOUT_S = 20  # the statistics statement; past it the caller gets StatsBusy
LOCK_WAIT_S = 30  # how long a caller waits for another's computation of the same project
FRESH_ENOUGH_S = 10  # a waiting caller takes the result of a computation begun this recently


class StatsBusy(DomainError):
    """The statistics could not be computed in time; the caller may retry."""

    status_code = 503


# One row per judgement of the project, packed as big-endian int8s in three byte strings
# (string_agg feeds every aggregate the same rows in the same order). The answer's bits:
#   0..31  the ranking: the place (1 best .. K) of each of the comparison's items in
#          increasing id order, 4 bits each (a pair: 0x21 when the lower id won, else 0x12);
#          0 for a tie or a skip
#   32 skip, 33 tie, 34 imported (not an annotator's own), 35 gold comparison,
#   36 gold comparison answered as its gold answer ('tie', or its first item id)
SKIP, TIE, IMPORTED, GOLD, GOLD_RIGHT = (1 << bit for bit in range(32, 37))
_STATS_SQL = """
WITH gold AS (  -- the project's few gold comparisons
    SELECT id, CASE WHEN jsonb_typeof(gold_ranking) = 'string' THEN gold_ranking #>> '{{}}'
                    ELSE gold_ranking ->> 0 END AS outcome
    FROM labeling_comparison WHERE project_id = %(project)s AND gold_ranking IS NOT NULL
), answers AS (
    SELECT j.annotator_id::bigint AS annotator_id, j.comparison_id::bigint AS comparison_id,
           CASE WHEN j.ranking IS NULL THEN 0::bigint
                WHEN jsonb_array_length(j.ranking) = 2 THEN
                    CASE WHEN (j.ranking ->> 0)::bigint < (j.ranking ->> 1)::bigint
                         THEN 33::bigint ELSE 18::bigint END
                ELSE (SELECT sum(place << (4 * (i - 1))::int)::bigint
                      FROM (SELECT place, row_number() OVER (ORDER BY item::bigint) AS i
                            FROM jsonb_array_elements_text(j.ranking)
                                 WITH ORDINALITY AS e (item, place)) AS places)
           END
           | CASE WHEN j.choice = '{tie}' THEN {tie_bit}::bigint
                  WHEN j.ranking IS NULL THEN {skip_bit}::bigint ELSE 0::bigint END
           | CASE WHEN j.source <> '{annotator}' THEN {imported_bit}::bigint ELSE 0::bigint END
           | CASE WHEN g.id IS NULL THEN 0::bigint
                  WHEN g.outcome = CASE WHEN j.choice = '{tie}' THEN 'tie'
                                        ELSE j.ranking ->> 0 END
                      THEN {gold_right_bit}::bigint
                  ELSE {gold_bit}::bigint END AS answer
    FROM labeling_judgement j LEFT JOIN gold g ON g.id = j.comparison_id
    WHERE j.project_id = %(project)s
)
SELECT string_agg(int8send(annotator_id), ''::bytea) AS annotators,
       string_agg(int8send(comparison_id), ''::bytea) AS comparisons,
       string_agg(int8send(answer), ''::bytea) AS answers,
       (SELECT count(*) FROM labeling_item WHERE project_id = %(project)s) AS items,
       (SELECT coalesce(json_object_agg(status, n), '{{}}')::text
        FROM (SELECT status, count(*) AS n FROM labeling_comparison
              WHERE project_id = %(project)s GROUP BY status) s) AS by_status
FROM answers
"""


def _stats_sql() -> str:
    return _STATS_SQL.format(
        tie=Judgement.Choice.TIE.value,
        annotator=Judgement.Source.ANNOTATOR.value,
        skip_bit=SKIP,
        tie_bit=TIE,
        imported_bit=IMPORTED,
        gold_bit=GOLD,
        gold_right_bit=GOLD | GOLD_RIGHT,
    )


def project_stats(project: Project, *, for_user: AbstractBaseUser) -> dict:
    """Counts, agreement with the majority, gold accuracy and inter-annotator agreement.

    Agreement with the majority: on comparisons with at least two non-skip answers, the
    share of an annotator's answers whose top choice (or tie) equals the most common top
    choice of the *other* annotators (comparisons where the others are split evenly are
    left out). ``agreement``: see labeling.agreement; it counts annotators' own non-skip
    answers to comparisons that are not gold, like agreement with the majority.

    Staff with labeling.view_judgement (managers, reviewers) see every annotator and the
    pairwise Cohen's κ (``agreement.cohen_kappa``, keyed
    "name|name"). An annotator sees the counts, the project's Fleiss' κ and α, and their
    own row only, without the gold figures (which, updated after each answer, would tell
    them which comparisons are gold); their ``cohen_kappa_with_others`` pools their pairs
    without naming anyone, and ``agreement.cohen_kappa`` is null for them."""
    everything = _cached_stats(project)
    if may(for_user, "labeling.view_judgement"):
        return everything
    annotators = [
        {**row, "gold_accuracy": None, "gold_judged": None}
        for row in everything["annotators"]
        if row["annotator"] == for_user.get_username()
    ]
    return {
        **everything,
        "annotators": annotators,
        "agreement": {**everything["agreement"], "cohen_kappa": None},
    }


def _cached_stats(project: Project) -> dict:
    # A new judgement raises the newest creation time, a revision the newest revision time:
    # two index lookups (judgement_by_project, judgement_revised). Not max(id): no index has
    # the project first and the id, and the primary key, scanned from the newest id back,
    # passes every newer judgement of other projects (0.23 s behind 1M of them).
    newest, revised = sql.fetchone(
        """
        SELECT (SELECT max(created_at) FROM labeling_judgement
                WHERE project_id = %(project)s) AS created_at,
               (SELECT max(revised_at) FROM labeling_judgement
                WHERE project_id = %(project)s) AS revised_at
        """,
        {"project": project.pk},
    )
    key = f"project-stats:{project.pk}:{_stamp(newest)}:{_stamp(revised)}"
    found = cache.get(key)
    if found is not None:
        return found
    asked_at = time.time()
    latest_key = f"project-stats-latest:{project.pk}"  # (when it began, its key)
    with transaction.atomic(), _bounded_statements():
        waited = not _lock(project, wait=False)
        if waited:  # another request computes this project's statistics: wait for it
            _lock(project, wait=True)
        found = cache.get(key)
        latest = cache.get(latest_key)
        if found is None and waited and latest and latest[0] >= asked_at - FRESH_ENOUGH_S:
            found = cache.get(latest[1])  # what it found, begun at most seconds before us
        if found is None:
            started = time.time()
            found = _compute(project)
            cache.set(key, found, CACHE_SECONDS)
            cache.set(latest_key, (started, key), CACHE_SECONDS)
    return found


def _stamp(moment) -> str:
    return moment.isoformat() if moment else "-"


def _lock(project: Project, *, wait: bool) -> bool:
    """Take the project's statistics lock (until the transaction ends): at once or not at
    all, or waiting up to LOCK_WAIT_S (StatsBusy after that)."""
    name = f"labeling.stats:{project.pk}"
    if not wait:
        (taken,) = sql.fetchone("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [name])
        return taken
    try:
        sql.fetchone("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
    except OperationalError as error:
        if not isinstance(error.__cause__, psycopg.errors.LockNotAvailable):
            raise
        raise StatsBusy(
            f"The statistics of project {project.slug!r} are being computed by another "
            f"request for more than {LOCK_WAIT_S} s; retry in a minute."
        ) from error
    return True


class _bounded_statements:
    """Inside a transaction: no JIT (compiling costs more than the statement gains), no
    parallel workers (one core stays free for the annotators' requests), and time limits;
    the previous settings come back afterwards (for a caller's enclosing transaction)."""

    def __enter__(self):
        self.saved = self._apply(
            {
                "jit": "off",
                "max_parallel_workers_per_gather": "0",
                "statement_timeout": f"{int(STATEMENT_TIMEOUT_S * 1000)}ms",
                "lock_timeout": f"{int(LOCK_WAIT_S * 1000)}ms",
            }
        )

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self._apply(self.saved)
        return False

    @staticmethod
    def _apply(settings: dict) -> dict:
        """Set ``settings`` for the transaction; returns the values they replace."""
        names = list(settings)
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
            before = dict(zip(names, cursor.fetchone(), strict=True))
            cursor.execute(
                "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names),
                [value for pair in settings.items() for value in pair],
            )
        return before


def _compute(project: Project) -> dict:
    try:
        row = sql.fetchone(_stats_sql(), {"project": project.pk})
    except OperationalError as error:
        if not isinstance(error.__cause__, psycopg.errors.QueryCanceled):
            raise
        raise StatsBusy(
            f"The statistics of project {project.slug!r} took longer than "
            f"{STATEMENT_TIMEOUT_S} s to compute; retry later."
        ) from error
    annotator_ids = _int8s(row.annotators)
    comparison_ids = _int8s(row.comparisons)
    answers = _int8s(row.answers)
    by_status = json.loads(row.by_status)
    ids, rater = _dense(annotator_ids)
    names, place = _usernames(ids)
    rater = place[rater]  # raters numbered as their names sort
    rows = _annotator_rows(rater, comparison_ids, answers, names)
    return {
        "project": project.slug,
        "items": row.items,
        "comparisons": sum(by_status.values()),
        "comparisons_open": by_status.get(Comparison.Status.OPEN, 0),
        "comparisons_complete": by_status.get(Comparison.Status.COMPLETE, 0),
        "comparisons_closed": by_status.get(Comparison.Status.CLOSED, 0),
        "judgements": len(answers),
        **rows,
    }


def _annotator_rows(rater, comparison_ids, answers, names) -> dict:
    """Each annotator's row and the project's agreement, from one entry per judgement."""
    own = (answers & IMPORTED) == 0
    skip = (answers & SKIP) != 0
    gold = (answers & GOLD) != 0
    a = len(names)
    per = {
        "judgements": np.bincount(rater[own], minlength=a),
        "skips": np.bincount(rater[own & skip], minlength=a),
        "gold_seen": np.bincount(rater[own & gold & ~skip], minlength=a),
        "gold_right": np.bincount(rater[own & ((answers & GOLD_RIGHT) != 0)], minlength=a),
    }
    counted = own & ~gold & ~skip
    unit = _dense(comparison_ids[counted])[1]
    places, category = _decode(answers[counted])
    compared, agree = _majority_verdicts(unit, category)
    per["compared"] = np.bincount(rater[counted][compared], minlength=a)
    per["agree"] = np.bincount(rater[counted][agree], minlength=a)
    figures, pooled = agreement.project_agreement(
        agreement.Answers(unit=unit, rater=rater[counted], category=category, places=places),
        names,
    )
    annotators = [
        {
            "annotator": name,
            "judgements": int(per["judgements"][i]),
            "skips": int(per["skips"][i]),
            "agreement_with_majority": _share(per["agree"][i], per["compared"][i]),
            "agreement_comparisons": int(per["compared"][i]),
            "gold_accuracy": _share(per["gold_right"][i], per["gold_seen"][i]),
            "gold_judged": int(per["gold_seen"][i]),
            "cohen_kappa_with_others": pooled[i],
        }
        for i, name in enumerate(names)
        if per["judgements"][i]  # an importer who judged nothing has no row
    ]
    return {"annotators": annotators, "agreement": figures}


def _decode(answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(places (N, K): each item's place, 1.5 for both items of a tie; category (N,): 0 for
    a tie, else 1 + the index of the item placed first) of non-skip answers."""
    tie = (answers & TIE) != 0
    if not (answers & 0xFFFFFF00).any():  # pairs only: 0x21, 0x12 or a tie
        category = np.where(tie, 0, np.where((answers & 0xFF) == 0x21, 1, 2))
        return np.array([[1.5, 1.5], [1, 2], [2, 1]])[category], category
    nibbles = (answers[:, None] >> (4 * np.arange(8))) & 0xF  # (N, 8)
    k = max(2, int((nibbles > 0).sum(axis=1).max())) if len(answers) else 2
    places = nibbles[:, :k].astype(float)
    places[tie, :2] = 1.5
    category = np.where(tie, 0, 1 + np.argmax(nibbles == 1, axis=1))
    return places, category


def _majority_verdicts(unit: np.ndarray, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each answer: (whether the others' answers have one most common outcome, whether
    it is this answer's). The others' counts are the comparison's less this answer: with
    c1 the comparison's largest count, k1 how many outcomes have it and c2 the next count,
    an answer at c1 agrees when it alone has c1 and c1 - 1 > c2, and disagrees when one
    other outcome also has c1; an answer below c1 disagrees when one outcome has c1."""
    units = int(unit.max()) + 1 if len(unit) else 0
    width = int(category.max()) + 1 if len(category) else 1
    counts = np.bincount(unit * width + category, minlength=units * width).reshape(units, width)
    c1 = counts.max(axis=1, initial=0)
    k1 = (counts == c1[:, None]).sum(axis=1)
    c2 = np.where(counts < c1[:, None], counts, 0).max(axis=1, initial=0)
    at_top = counts[unit, category] == c1[unit]
    top_alone = (k1 == 1)[unit]
    agree = at_top & top_alone & (c1 - 1 > c2)[unit]
    compared = np.where(at_top, agree | (k1 == 2)[unit], top_alone)
    return compared, agree


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values in increasing order, each value's index among them), as
    ``np.unique(values, return_inverse=True)``: by counting when the values span a range
    not much wider than their number (ids of one project), else by sorting."""
    if not len(values):
        return values, np.zeros(0, dtype=np.int64)
    low = int(values.min())
    if int(values.max()) - low > 4 * len(values) + 1024:
        return np.unique(values, return_inverse=True)
    present = np.bincount(values - low) > 0
    return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[values - low]


def _usernames(ids: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The users' names in the database's order, and each id's place in it."""
    User = get_user_model()
    users = (
        User.objects.filter(pk__in=[int(i) for i in ids])
        .order_by(User.USERNAME_FIELD)
        .values_list("pk", User.USERNAME_FIELD)
    )
    names, place = [], {}
    for pk, name in users:
        place[pk] = len(names)
        names.append(name)
    return names, np.array([place[int(i)] for i in ids], dtype=np.int64)


def _int8s(packed: bytes | None) -> np.ndarray:
    return np.frombuffer(packed or b"", dtype=">i8").astype(np.int64)


def _share(part, whole) -> float | None:
    return int(part) / int(whole) if whole else None
