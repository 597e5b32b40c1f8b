"""The project dashboard (staff): learning curves as plots, the rounds' metrics of the
project's kind, judgements per annotator, and the live status of the running round."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render

from core.decorators import staff_required
from labeling import stats as labeling_stats
from labeling.models import Project
from training import plots, round_metrics, selectors


def _project(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404(f"No project {slug!r}.")
    return project


@staff_required("The project dashboard", permission="training.view_run")
def dashboard(request, slug: str):
    project = _project(slug)
    history = selectors.round_history(project)
    columns = round_metrics.reported_columns(round_metrics.round_columns(project), history)
    rows = [
        {
            "round": row["round"],
            "cells": [round_metrics.format_metric(row, column) for column in columns],
        }
        for row in history
    ]
    stats = labeling_stats.project_stats(project, for_user=request.user)
    return render(
        request,
        "training/dashboard.html",
        {
            "project": project,
            "history": history,
            "columns": columns,
            "rows": rows,
            "has_plots": bool(selectors.plotted_series(history)),
            "stats": stats,
        },
    )


@staff_required("The project dashboard", permission="training.view_run")
def learning_curves_png(request, slug: str):
    """The per-round metrics as one PNG of small plots."""
    series = selectors.plotted_series(selectors.round_history(_project(slug)))
    if not series:
        raise Http404("No finished rounds to plot yet.")
    return HttpResponse(plots.learning_curves_png(series), content_type="image/png")
