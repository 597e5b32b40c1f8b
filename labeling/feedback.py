"""A project's feedback form (config ``feedback`` and ``criteria``): what an answer may or
must carry beside its choice or ranking.

``feedback`` is an object of the parts a project asks for, each ``"optional"`` or
``"required"`` (absent: not asked for, and a 400 when sent): ``strength`` (how much better
a pair's winner is: slight, clear, strong), ``ratings`` (each candidate rated
RATING_MIN..RATING_MAX on every criterion), ``critique`` (free text, at most
MAX_CRITIQUE_CHARS), ``edit`` (an improved text of the winner; text projects); and
``both_bad`` (true: the choice ``both_bad`` is offered). ``criteria`` lists the rated
criteria with their weights in the reward the policy is trained on (the weighted sum of
one reward head per criterion), default one criterion ``overall``.
"""

from __future__ import annotations

from typing import Any

PARTS = ("strength", "ratings", "critique", "edit")
LEVELS = ("optional", "required")
STRENGTHS = ("slight", "clear", "strong")
RATING_MIN, RATING_MAX = 1, 7
MAX_CRITIQUE_CHARS = 4000
MAX_CRITERIA = 8
DEFAULT_CRITERIA = [{"name": "overall", "weight": 1.0}]


def _level(v: Any) -> str | None:
    return None if v in LEVELS else f"must be one of {', '.join(LEVELS)}; got {v!r}"


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


FEEDBACK_KEYS = {**{part: _level for part in PARTS}, "both_bad": _flag}


def check_criteria(v: Any) -> str | None:
    """A list of 1..MAX_CRITERIA criteria, each a name or {"name", "weight"}; names are
    short identifiers, unique; weights finite and ≥ 0, not all 0."""
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_CRITERIA:
        return f"must be a list of 1 to {MAX_CRITERIA} criteria, got {v!r}"
    names, weights = [], []
    for i, c in enumerate(v):
        if isinstance(c, str):
            c = {"name": c, "weight": 1.0}
        if not isinstance(c, dict) or set(c) - {"name", "weight"} or "name" not in c:
            return f"[{i}] must be a name or an object {{name, weight}}, got {c!r}"
        name, weight = c["name"], c.get("weight", 1.0)
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 40:
            return f"[{i}].name must be an identifier of at most 40 characters, got {name!r}"
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return f"[{i}].weight must be a number, got {weight!r}"
        if not 0 <= weight <= 1e6:
            return f"[{i}].weight must be in [0, 1e6], got {weight!r}"
        names.append(name)
        weights.append(float(weight))
    if len(set(names)) != len(names):
        return f"names must be unique, got {names}"
    if not any(weights):
        return "at least one weight must be above 0"
    return None


def criteria_of(raw: Any) -> list[tuple[str, float]]:
    """(name, weight) of each criterion of a stored config, in order."""
    criteria = (raw or {}).get("criteria") or DEFAULT_CRITERIA
    return [
        (c, 1.0) if isinstance(c, str) else (c["name"], float(c.get("weight", 1.0)))
        for c in criteria
    ]


def form_of(raw: Any) -> dict[str, Any]:
    """The feedback form of a stored config: {part: "optional" | "required"} and both_bad."""
    return (raw or {}).get("feedback") or {}
