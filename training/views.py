"""The project dashboard (staff): learning curves as plots, judgements per annotator, and
the live status of the running round."""

from __future__ import annotations

import io

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import render

from labeling import stats as labeling_stats
from labeling.models import Project
from training import selectors


def _project(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404(f"No project {slug!r}.")
    return project


@staff_member_required
def dashboard(request, slug: str):
    project = _project(slug)
    history = selectors.round_history(project)
    stats = labeling_stats.project_stats(project, for_user=request.user)
    return render(
        request,
        "training/dashboard.html",
        {
            "project": project,
            "history": history,
            "has_plots": bool(selectors.plotted_series(history)),
            "stats": stats,
        },
    )


@staff_member_required
def learning_curves_png(request, slug: str):
    """The per-round metrics as one PNG of small plots."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    series = selectors.plotted_series(selectors.round_history(_project(slug)))
    if not series:
        raise Http404("No finished rounds to plot yet.")
    columns = min(3, len(series))
    rows = (len(series) + columns - 1) // columns
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), dpi=100, layout="constrained")
    for i, (_metric, title, rounds, values, errors) in enumerate(series):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.errorbar(rounds, values, yerr=errors, marker="o", color="#2457d6", capsize=3)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("round")
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return HttpResponse(buffer.getvalue(), content_type="image/png")
