"""Judgements in words, for people reading lists of them (the admin): what was compared
and which item won, rather than "comparison 19"."""

from __future__ import annotations

from collections.abc import Mapping

from labeling.models import Item, Judgement

SHORT_TEXT = 40  # characters of a response shown before "…"


def shorten(text: str, limit: int = SHORT_TEXT) -> str:
    """``text`` on one line, cut to ``limit`` characters with "…" when longer."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def item_label(item_id: int, items: Mapping[int, Item]) -> str:
    """A text item's response, shortened and quoted; otherwise (a trajectory clip, or an
    item since deleted) its id."""
    item = items.get(item_id)
    if item is None:
        return f"item {item_id} (deleted)"
    return f"“{shorten(item.text)}”" if item.text else f"item {item_id}"


def judgement_summary(judgement: Judgement, items: Mapping[int, Item]) -> str:
    """``“winner…” over “loser…”`` for a pair, ``a > b > c`` for a ranking, ``a ties b``
    and ``skipped a vs b``; ``items`` maps the compared items' ids to their rows."""
    if judgement.ranking:
        labels = [item_label(pk, items) for pk in judgement.ranking]
        return f"{labels[0]} over {labels[1]}" if len(labels) == 2 else " > ".join(labels)
    shown = [item_label(pk, items) for pk in judgement.shown_order or []]
    if judgement.choice == Judgement.Choice.TIE:
        return " ties ".join(shown)
    return "skipped " + " vs ".join(shown)
