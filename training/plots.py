"""The dashboard's learning curves: one small plot per metric, against the round number."""

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
