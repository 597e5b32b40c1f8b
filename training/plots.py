"""The dashboard's plots: the learning curves, one small plot per metric against the round
number, and the label forecast."""

from __future__ import annotations

import io


def learning_curves_figure(
    series: list[tuple[str, str, list[int], list[float], list[float] | None]],
):
    """A matplotlib Figure of one plot per (metric, title, rounds, values, errors) of
    ``series`` (selectors.plotted_series); the x axis is the round number, with integer
    ticks only."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(series))
    rows = (len(series) + columns - 1) // columns
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), dpi=100, layout="constrained")
    for i, (_metric, title, rounds, values, errors) in enumerate(series):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.errorbar(rounds, values, yerr=errors, marker="o", color="#2457d6", capsize=3)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("round")
        axes.grid(alpha=0.3)
        # min_n_ticks=1: with one or two rounds in view the default asks for more integer
        # ticks than there are, and falls back to fractional ones
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)
    return figure


def learning_curves_png(
    series: list[tuple[str, str, list[int], list[float], list[float] | None]],
) -> bytes:
    """learning_curves_figure as PNG bytes."""
    buffer = io.BytesIO()
    learning_curves_figure(series).savefig(buffer, format="png")
    return buffer.getvalue()


def forecast_png(forecast: dict) -> bytes:
    """training.forecast.label_forecast's answer as a PNG: the rounds' points, the fitted
    curve, the target, and the labels that reach it with their interval."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    metric, curve = forecast["metric"], forecast["curve"]
    labels = [p["labels"] for p in forecast["points"]]
    values = [p[metric] for p in forecast["points"]]
    needed = forecast["labels_needed"]
    right = max(labels) * 2 if needed is None else max(needed, forecast["ci_high"] or 0) * 1.2
    n = np.linspace(min(labels) * 0.8, max(right, max(labels) * 1.2), 200)
    fitted = curve["floor"] + curve["scale"] * n ** (-curve["exponent"])
    if curve["as_error"]:
        fitted = 1.0 - fitted
    figure = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(labels, values, "o", color="#2457d6", label="rounds")
    axes.plot(n, fitted, "-", color="#2457d6", alpha=0.6, label="fitted curve")
    axes.axhline(forecast["target"], color="#c0392b", linestyle="--", label="target")
    if needed is not None:
        low, high = forecast["ci_low"], forecast["ci_high"] or needed
        axes.axvspan(low, high, color="#c0392b", alpha=0.12, label="95% interval")
        axes.axvline(needed, color="#c0392b", alpha=0.7)
    axes.set_xlabel("labels (judgements)")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
