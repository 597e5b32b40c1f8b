"""Reads of arenas: an arena's leaderboard (Bradley-Terry scores with Davidson's ties and
95% bootstrap intervals, training.ml.arena_scores), the answer to "is version N better
than version M?", and the summaries the project dashboard shows.

A finished arena reads its ``result``, the leaderboard as it stood when it finished (what
``arena.finished`` sent); one still being judged is fitted on its judgements so far.
"""

from __future__ import annotations

import math

import numpy as np
from django.contrib.auth.models import AbstractBaseUser

from core.api.permissions import may
from labeling.models import Comparison, Judgement, Project
from labeling.preferences import Preference, preferences
from training.ml.arena_scores import fit_arena_scores, outcome_codes
from training.models import Arena, ArenaEntry, Policy

SUMMARIES_SHOWN = 3  # the newest arenas on the dashboard
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _number(value: float) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def arena_results(arena: Arena) -> dict:
    """The arena's leaderboard, fitted on its judgements so far:
    ``leaderboard``: [{version, score, ci_low, ci_high, wins, losses, ties}], best first
    (score: the log-strength θ, mean 0 over the versions; the interval a 95% bootstrap
    percentile interval over comparisons; None without judgements);
    ``pairwise``: [{version, other, difference, ci_low, ci_high, better}] for each pair,
    the better-scored version first (difference θ_version − θ_other; better: True when
    the interval lies above 0, None when it cannot tell);
    ``tie_strength``: Davidson's ν; ``judgements``: the judged pairs fitted."""
    versions = list(arena.versions)
    index = {version: i for i, version in enumerate(versions)}
    version_of = dict(ArenaEntry.objects.filter(arena=arena).values_list("item_id", "version"))
    comparison_ids = set(
        ArenaEntry.objects.filter(arena=arena).values_list("comparison_id", flat=True)
    )
    judged = [
        pair
        for pair in preferences(arena.project, comparison_ids=comparison_ids)
        if pair.a_id in version_of and pair.b_id in version_of
    ]
    fit = fit_arena_scores(
        n_versions=len(versions),
        first=np.array([index[version_of[p.a_id]] for p in judged], dtype=np.int64),
        second=np.array([index[version_of[p.b_id]] for p in judged], dtype=np.int64),
        outcome=outcome_codes(np.array([p.p for p in judged])),
        groups=_comparison_of(judged),
        n_bootstrap=BOOTSTRAP_RESAMPLES,
        seed=BOOTSTRAP_SEED,
    )
    order = sorted(range(len(versions)), key=lambda i: (-fit.scores[i], versions[i]))
    leaderboard = [
        {
            "version": versions[i],
            "score": _number(fit.scores[i]),
            "ci_low": _number(fit.ci_low[i]),
            "ci_high": _number(fit.ci_high[i]),
            "wins": int(fit.wins[i]),
            "losses": int(fit.losses[i]),
            "ties": int(fit.ties[i]),
        }
        for i in order
    ]
    pairwise = []
    for rank, i in enumerate(order):
        for j in order[rank + 1 :]:
            difference, low, high = fit.difference(i, j)
            pairwise.append(
                {
                    "version": versions[i],
                    "other": versions[j],
                    "difference": _number(difference),
                    "ci_low": _number(low),
                    "ci_high": _number(high),
                    "better": True if _number(low) is not None and low > 0 else None,
                }
            )
    return {
        "leaderboard": leaderboard,
        "pairwise": pairwise,
        "tie_strength": _number(fit.tie_strength) if fit.n_outcomes else None,
        "judgements": fit.n_outcomes,
    }


def _comparison_of(judged: list[Preference]) -> np.ndarray:
    """The comparison of each judged pair: the bootstrap resamples comparisons, all of a
    comparison's judgements together."""
    ids = {p.judgement_id for p in judged}
    comparison = dict(Judgement.objects.filter(pk__in=ids).values_list("pk", "comparison_id"))
    return np.array([comparison[p.judgement_id] for p in judged], dtype=np.int64)


def results_of(arena: Arena) -> dict:
    """The finished arena's stored result; for any other, arena_results now (empty before
    it has comparisons)."""
    if arena.status == Arena.Status.FINISHED and arena.result:
        return arena.result
    if arena.status in (Arena.Status.SAMPLED, Arena.Status.FINISHED):
        return arena_results(arena)
    return {"leaderboard": [], "pairwise": [], "tie_strength": None, "judgements": 0}


def judging_progress(arena: Arena) -> dict[str, int]:
    """{"comparisons": made, "complete": those with ``overlap`` judgements or closed}."""
    ids = ArenaEntry.objects.filter(arena=arena).values("comparison_id")
    comparisons = Comparison.objects.filter(pk__in=ids)
    made = comparisons.count()
    waiting = comparisons.filter(judgement_count__lt=arena.project.overlap).exclude(
        status=Comparison.Status.CLOSED
    )
    return {"comparisons": made, "complete": made - waiting.count()}


def version_question(results: dict, *, version: int, other: int) -> dict | None:
    """ "Is ``version`` better than ``other``?" from ``results`` (arena_results): {version,
    other, difference (θ_version − θ_other), ci_low, ci_high, answer ("yes", "no" or "can't
    tell yet"), sentence}; None when either is not in the arena or they are the same."""
    for row in results["pairwise"]:
        if (row["version"], row["other"]) == (version, other):
            difference, low, high = row["difference"], row["ci_low"], row["ci_high"]
            break
        if (row["version"], row["other"]) == (other, version):
            difference = -row["difference"] if row["difference"] is not None else None
            low = -row["ci_high"] if row["ci_high"] is not None else None
            high = -row["ci_low"] if row["ci_low"] is not None else None
            break
    else:
        return None
    if low is None or high is None:
        answer = "can't tell yet"
        sentence = f"No judgements yet compare version {version} with version {other}."
    else:
        answer = "yes" if low > 0 else "no" if high < 0 else "can't tell yet"
        interval = f"{difference:+.2f} (95% interval {low:+.2f} to {high:+.2f})"
        sentence = {
            "yes": f"Yes: version {version} scores {interval} above version {other}; "
            "the interval excludes 0.",
            "no": f"No: version {version} scores {interval} against version {other}; "
            f"version {other} is better.",
            "can't tell yet": f"Can't tell yet: version {version} − version {other} is "
            f"{interval}; the interval includes 0, so more judgements are needed.",
        }[answer]
    return {
        "version": version,
        "other": other,
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "answer": answer,
        "sentence": sentence,
    }


def arena_summary(project: Project, *, user: AbstractBaseUser) -> dict | None:
    """For the project dashboard (training/_arena_summary.html): {"arenas": the newest
    arenas, each {arena, results, progress, leader, runner_up (leaderboard rows or None),
    lead (the leader's pairwise row over the runner-up, or None)}, "may_start": whether
    ``user`` may start one, "versions": the project's policy version numbers}; None when
    ``user`` may not see arenas (training.view_arena)."""
    if not may(user, "training.view_arena"):
        return None
    arenas = []
    for arena in Arena.objects.filter(project=project).select_related("project")[:SUMMARIES_SHOWN]:
        results = results_of(arena)
        board = results["leaderboard"] if results["judgements"] else []
        arenas.append(
            {
                "arena": arena,
                "results": results,
                "progress": judging_progress(arena),
                "leader": board[0] if board else None,
                "runner_up": board[1] if len(board) > 1 else None,
                "lead": results["pairwise"][0] if board and results["pairwise"] else None,
            }
        )
    versions = (
        Policy.objects.filter(project=project)
        .exclude(checkpoint="")
        .order_by("version")
        .values_list("version", flat=True)
    )
    return {
        "arenas": arenas,
        "may_start": may(user, "training.start_arena"),
        "versions": list(versions),
    }
