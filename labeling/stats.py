"""A project's statistics: counts, each annotator's agreement with the others' majority,
and gold accuracy. Computed by PostgreSQL in one statement (no judgement is loaded into
Python) and cached per project until a judgement arrives or is revised."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count

from core import sql
from labeling.models import Comparison, Item, Judgement, Project

CACHE_SECONDS = 300  # also bounds how long a deleted judgement stays counted

# What an answer says is best: the top item id as text, 'tie', or NULL for a skip; a gold
# answer the same way ('tie', or its first item id).
_STATS_SQL = """
WITH answers AS (
    SELECT j.annotator_id, j.comparison_id, c.gold_ranking IS NOT NULL AS gold,
           CASE WHEN j.choice = '{tie}' THEN 'tie'
                ELSE j.ranking ->> 0 END AS outcome,
           CASE WHEN jsonb_typeof(c.gold_ranking) = 'string' THEN c.gold_ranking #>> '{{}}'
                ELSE c.gold_ranking ->> 0 END AS gold_outcome
    FROM labeling_judgement j JOIN labeling_comparison c ON c.id = j.comparison_id
    WHERE j.project_id = %(project)s AND j.source = '{annotator}'
), counted AS (  -- non-gold outcomes per comparison
    SELECT comparison_id, outcome, count(*) AS n
    FROM answers WHERE outcome IS NOT NULL AND NOT gold GROUP BY comparison_id, outcome
), versus AS (  -- each answer against the others' count of every outcome
    SELECT a.annotator_id, a.comparison_id, o.outcome = a.outcome AS same,
           o.n - (o.outcome = a.outcome)::int AS others
    FROM answers a JOIN counted o ON o.comparison_id = a.comparison_id
    WHERE a.outcome IS NOT NULL AND NOT a.gold
), ranked AS (
    SELECT annotator_id, comparison_id, same, others,
           max(others) OVER (PARTITION BY annotator_id, comparison_id) AS top
    FROM versus
), verdicts AS (  -- the others' majority, when it is one outcome (not split evenly)
    SELECT annotator_id,
           bool_or(same AND others = top) AS agrees
    FROM ranked
    GROUP BY annotator_id, comparison_id
    HAVING max(top) > 0 AND count(*) FILTER (WHERE others = top) = 1
), per_annotator AS (
    SELECT annotator_id,
           count(*) AS judgements,
           count(*) FILTER (WHERE outcome IS NULL) AS skips,
           count(*) FILTER (WHERE gold AND outcome IS NOT NULL) AS gold_seen,
           count(*) FILTER (WHERE gold AND outcome = gold_outcome) AS gold_right
    FROM answers GROUP BY annotator_id
)
SELECT u.username, p.judgements, p.skips, p.gold_seen, p.gold_right,
       coalesce(v.compared, 0) AS compared, coalesce(v.agree, 0) AS agree
FROM per_annotator p
JOIN {users} u ON u.id = p.annotator_id
LEFT JOIN (SELECT annotator_id, count(*) AS compared, count(*) FILTER (WHERE agrees) AS agree
           FROM verdicts GROUP BY annotator_id) v ON v.annotator_id = p.annotator_id
ORDER BY u.username
"""


def _stats_sql() -> str:
    return _STATS_SQL.format(
        tie=Judgement.Choice.TIE.value,
        annotator=Judgement.Source.ANNOTATOR.value,
        users=get_user_model()._meta.db_table,
    )


def project_stats(project: Project, *, for_user: AbstractBaseUser) -> dict:
    """Counts, agreement with the majority and gold accuracy.

    Agreement: on comparisons with at least two non-skip answers, the share of an
    annotator's answers whose top choice (or tie) equals the most common top choice of the
    *other* annotators (comparisons where the others are split evenly are left out).
    Staff see every annotator; an annotator sees the counts and their own figures only,
    without the gold ones (which, updated after each answer, would tell them which
    comparisons are gold)."""
    everything = _cached_stats(project)
    annotators = []
    for row in everything["annotators"]:
        if not for_user.is_staff and row["annotator"] != for_user.get_username():
            continue
        if not for_user.is_staff:
            row = {**row, "gold_accuracy": None, "gold_judged": None}
        annotators.append(row)
    return {**everything, "annotators": annotators}


def _cached_stats(project: Project) -> dict:
    # A new judgement raises the newest id; a revision changes no id but the newest
    # revision time (two index lookups).
    newest, revised = sql.fetchone(
        """
        SELECT (SELECT max(id) FROM labeling_judgement WHERE project_id = %(project)s) AS id,
               (SELECT max(revised_at) FROM labeling_judgement
                WHERE project_id = %(project)s) AS revised_at
        """,
        {"project": project.pk},
    )
    key = f"project-stats:{project.pk}:{newest}:{revised.isoformat() if revised else '-'}"
    found = cache.get(key)
    if found is None:
        found = _compute(project)
        cache.set(key, found, CACHE_SECONDS)
    return found


def _compute(project: Project) -> dict:
    comparisons = Comparison.objects.filter(project=project)
    by_status = dict(comparisons.values_list("status").annotate(n=Count("pk")).order_by())
    annotators = [
        {
            "annotator": row.username,
            "judgements": row.judgements,
            "skips": row.skips,
            "agreement_with_majority": row.agree / row.compared if row.compared else None,
            "agreement_comparisons": row.compared,
            "gold_accuracy": row.gold_right / row.gold_seen if row.gold_seen else None,
            "gold_judged": row.gold_seen,
        }
        for row in sql.fetchall(_stats_sql(), {"project": project.pk})
    ]
    return {
        "project": project.slug,
        "items": Item.objects.filter(project=project).count(),
        "comparisons": sum(by_status.values()),
        "comparisons_open": by_status.get(Comparison.Status.OPEN, 0),
        "comparisons_complete": by_status.get(Comparison.Status.COMPLETE, 0),
        "comparisons_closed": by_status.get(Comparison.Status.CLOSED, 0),
        "judgements": Judgement.objects.filter(project=project).count(),
        "annotators": annotators,
    }
