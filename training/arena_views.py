"""Arena pages (staff): an arena's leaderboard as a table and a plot of the scores with
their intervals, the answer to "is version N better than version M?", and the form on the
dashboard that starts an arena."""

from __future__ import annotations

import io

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.decorators import staff_required
from core.errors import InvalidInput
from labeling.models import Project
from training import arena as arena_service
from training import arena_selectors
from training.models import Arena

ACTIVE_REFRESH_S = 10  # the page reloads itself while an arena is sampled or judged


def _arena(slug: str, arena_id: int) -> Arena:
    arena = (
        Arena.objects.filter(project__slug=slug, pk=arena_id)
        .select_related("project", "created_by")
        .first()
    )
    if arena is None:
        raise Http404(f"No arena {arena_id} in project {slug!r}.")
    return arena


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@staff_required("The arena", permission="training.view_arena")
def arena_page(request, slug: str, arena_id: int):
    arena = _arena(slug, arena_id)
    arena_service.finish_if_judged(arena)
    results = arena_selectors.results_of(arena)
    asked = {"version": request.GET.get("version"), "other": request.GET.get("other")}
    question, question_error = None, ""
    if asked["version"] or asked["other"]:
        version, other = _int(asked["version"]), _int(asked["other"])
        if version is not None and other is not None and version != other:
            question = arena_selectors.version_question(results, version=version, other=other)
        if question is None:
            named = ", ".join(map(str, arena.versions))
            question_error = f"Choose two different versions of this arena ({named})."
    return render(
        request,
        "training/arena.html",
        {
            "project": arena.project,
            "arena": arena,
            "results": results,
            "judging": arena_selectors.judging_progress(arena),
            "question": question,
            "question_error": question_error,
            "asked": asked,
            "refresh_s": ACTIVE_REFRESH_S
            if arena.status not in (Arena.Status.FINISHED, Arena.Status.FAILED)
            else None,
        },
    )


@staff_required("The arena", permission="training.view_arena")
def arena_scores_png(request, slug: str, arena_id: int):
    """The leaderboard's scores as points with their 95% intervals as bars."""
    board = arena_selectors.results_of(_arena(slug, arena_id))["leaderboard"]
    if not any(row["ci_low"] is not None for row in board):
        raise Http404("No judgements to plot yet.")
    return HttpResponse(scores_png(board), content_type="image/png")


def scores_png(board: list[dict]) -> bytes:
    """A horizontal plot of each version's score (best at the top) with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = [row for row in board if row["ci_low"] is not None][::-1]  # best at the top
    figure = Figure(figsize=(6.0, 0.6 * len(rows) + 1.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    scores = [row["score"] for row in rows]
    errors = [
        [row["score"] - row["ci_low"] for row in rows],
        [row["ci_high"] - row["score"] for row in rows],
    ]
    axes.errorbar(scores, positions, xerr=errors, fmt="o", color="#2457d6", capsize=4)
    axes.axvline(0.0, color="#888", linewidth=0.8, linestyle="--")
    axes.set_yticks(positions, [f"v{row['version']}" for row in rows])
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlabel("score (log-strength, mean 0) with 95% bootstrap interval")
    axes.grid(axis="x", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@require_POST
@staff_required("Starting an arena", permission="training.start_arena")
def start_arena_page(request, slug: str):
    """The dashboard's form: ``versions`` ("0, 3"), ``comparisons``; to the arena's page,
    or a page saying what was wrong (400)."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404(f"No project {slug!r}.")
    raw = request.POST.get("versions", "")
    try:
        versions = [int(part) for part in raw.replace(",", " ").split()]
    except ValueError:
        versions = raw
    comparisons = _int(request.POST.get("comparisons"))
    try:
        arena = arena_service.start_arena(
            project=project,
            versions=versions,
            comparisons=comparisons if comparisons is not None else request.POST.get("comparisons"),
            created_by=request.user,
        )
    except InvalidInput as exc:
        context = {"project": project, "error": exc.message, "posted": request.POST}
        return render(request, "training/arena_start.html", context, status=400)
    return redirect("training:arena", slug=project.slug, arena_id=arena.pk)
