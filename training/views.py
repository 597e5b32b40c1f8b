"""The project dashboard (staff): learning curves as plots, the rounds' metrics of the
project's kind, the label forecast, judgements per annotator, agreement between annotators,
each annotator's estimated reliability, arenas, and the live status of the running round."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render

from core.decorators import staff_required
from labeling import stats as labeling_stats
from labeling.models import Project
from training import arena_selectors, plots, round_metrics, selectors
from training.forecast import label_forecast

PAIRS_SHOWN = 50  # Cohen's κ rows on the dashboard, least agreeing first (the API has all)


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
            "agreement": _agreement_section(stats["agreement"]),
            "forecast": label_forecast(project, history),
            "reliability": selectors.annotator_reliability(project),
            "arena_summary": arena_selectors.arena_summary(project, user=request.user),
        },
    )


def _agreement_section(agreement: dict) -> dict:
    """The agreement figures as the dashboard prints them: each estimate with its interval,
    and the pairs of annotators who agree least first."""
    found = agreement["cohen_kappa"] or {}  # staff always get it; {} before any pair

    def least_agreeing_first(pair: str) -> tuple:  # undefined κ last
        kappa = found[pair]["kappa"]
        return (kappa is None, kappa or 0.0, pair)

    pairs = [
        {
            "annotators": pair.replace("|", " · "),
            "kappa": _estimate(found[pair]["kappa"], found[pair]["ci"]),
            "n": found[pair]["n"],
        }
        for pair in sorted(found, key=least_agreeing_first)
    ]
    return {
        "comparisons": agreement["comparisons"],
        "answers": agreement["answers"],
        "level": agreement["alpha_level"],
        "fleiss": _estimate(agreement["fleiss_kappa"], agreement["fleiss_kappa_ci"]),
        "alpha": _estimate(agreement["krippendorff_alpha"], agreement["krippendorff_alpha_ci"]),
        "confidence": f"{agreement['confidence']:.0%}",
        "pairs": pairs[:PAIRS_SHOWN],
        "pairs_hidden": max(0, len(pairs) - PAIRS_SHOWN),
    }


def _estimate(value: float | None, interval: list[float] | None) -> str:
    """'0.42 (0.31 to 0.52)', '0.42' without an interval, '–' when undefined."""
    if value is None:
        return "–"
    if interval is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({interval[0]:.2f} to {interval[1]:.2f})"


@staff_required("The project dashboard", permission="training.view_run")
def learning_curves_png(request, slug: str):
    """The per-round metrics as one PNG of small plots."""
    series = selectors.plotted_series(selectors.round_history(_project(slug)))
    if not series:
        raise Http404("No finished rounds to plot yet.")
    return HttpResponse(plots.learning_curves_png(series), content_type="image/png")


@staff_required("The project dashboard", permission="training.view_run")
def forecast_png(request, slug: str):
    """The label forecast as a PNG: the rounds, the fitted curve and the target."""
    project = _project(slug)
    forecast = label_forecast(project, selectors.round_history(project))
    if "unavailable" in forecast:
        raise Http404(forecast["unavailable"])
    return HttpResponse(plots.forecast_png(forecast), content_type="image/png")
