"""The feedback an answer carries beside its choice or ranking, checked against the
project's form (config ``feedback`` and ``criteria``, labeling/feedback.py).

Every bad, missing or unasked-for part is an InvalidField naming it (``strength``,
``ratings.12.overall``, ``critique``, ``edit``; ``choice`` for a both_bad the form does not
offer), so the API answers a 400 that says which field to fix. The rules:

- a part the form does not ask for is refused whenever it is sent;
- ``strength`` goes with a pair's winner (choice left or right) only;
- ``ratings`` rate every item of the comparison on every criterion, 1..7, on any answer
  but a skip;
- ``critique`` is free text of at most MAX_CRITIQUE_CHARS, on any answer (a skip too);
- ``edit`` is an improved text of the winner (left, right or a ranking's first);
- a "required" part is required on the answers it goes with: never on a skip, strength and
  edit not on a tie or both_bad.

Absent, null and "" all mean "not given" (a judgement stores strength and critique as ""
when none was given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidField
from core.text import unstorable
from labeling.conversations import MAX_CONTENT_CHARS
from labeling.feedback import (
    MAX_CRITIQUE_CHARS,
    RATING_MAX,
    RATING_MIN,
    STRENGTHS,
    criteria_of,
    form_of,
)
from labeling.models import Item, Judgement, Project

WINNER_CHOICES = ("left", "right", "ranking")  # answers with a winner (the edit's original)
PAIR_WINNER_CHOICES = ("left", "right")  # answers a strength goes with


@dataclass(frozen=True)
class Feedback:
    """An answer's feedback as a judgement stores it: strength and critique "" and ratings
    and edit None when not given. ``edit`` is the edited text; ratings are keyed by item
    id (a string, as in JSON) in the shown order, criteria in the project's order."""

    strength: str = ""
    ratings: dict[str, dict[str, int]] | None = None
    critique: str = ""
    edit: str | None = None

    @classmethod
    def of(cls, judgement: Judgement) -> Feedback:
        """The feedback ``judgement`` holds (its edit item's text as ``edit``)."""
        edit = judgement.edit.text if judgement.edit_id is not None else None
        return cls(judgement.strength, judgement.ratings, judgement.critique, edit)


def _given(value: Any) -> bool:
    return value is not None and value != ""


def check_feedback(
    *,
    project: Project,
    choice: str,
    shown: list[int],
    strength: Any = None,
    ratings: Any = None,
    critique: Any = None,
    edit: Any = None,
) -> Feedback:
    """The feedback of an answer ``choice`` (as resolve_answer returns it) to a comparison
    of the items ``shown``, checked against ``project``'s form; InvalidField otherwise."""
    form = form_of(project.config)
    if choice == Judgement.Choice.BOTH_BAD and not form.get("both_bad"):
        raise InvalidField(
            "choice",
            f"'both_bad' is not offered in project {project.slug!r} (its config feedback "
            "has no both_bad: true); give another answer, or skip",
        )
    sent = {"strength": strength, "ratings": ratings, "critique": critique, "edit": edit}
    for part, value in sent.items():
        if _given(value) and part not in form:
            raise InvalidField(
                part, f"project {project.slug!r} does not ask for {part} (config feedback)"
            )
    skip = choice == Judgement.Choice.SKIP
    applies = {
        "strength": choice in PAIR_WINNER_CHOICES,
        "ratings": not skip,
        "critique": not skip,  # taken on a skip, but not required there
        "edit": choice in WINNER_CHOICES,
    }
    for part, value in sent.items():
        if not _given(value) and form.get(part) == "required" and applies[part]:
            raise InvalidField(part, f"is required in project {project.slug!r}")
    return Feedback(
        strength=_strength(strength, choice) if _given(strength) else "",
        ratings=_ratings(ratings, choice, shown, project) if _given(ratings) else None,
        critique=_critique(critique) if _given(critique) else "",
        edit=_edit(edit, choice) if _given(edit) else None,
    )


def _strength(value: Any, choice: str) -> str:
    if value not in STRENGTHS:
        raise InvalidField("strength", f"must be one of {', '.join(STRENGTHS)}; got {value!r}")
    if choice not in PAIR_WINNER_CHOICES:
        raise InvalidField(
            "strength", f"goes with a pair's winner (choice left or right), not with {choice!r}"
        )
    return value


def _ratings(value: Any, choice: str, shown: list[int], project: Project) -> dict:
    if choice == Judgement.Choice.SKIP:
        raise InvalidField("ratings", "a skip rates nothing; send the ratings with an answer")
    criteria = [name for name, _ in criteria_of(project.config)]
    if not isinstance(value, dict):
        raise InvalidField(
            "ratings",
            f"must be an object {{item id: {{criterion: {RATING_MIN}..{RATING_MAX}}}}} "
            f"for the items {shown}; got {value!r}",
        )
    items = [str(pk) for pk in shown]
    if extra := sorted(set(value) - set(items)):
        raise InvalidField(
            _key_field("ratings", extra[0]), f"is not an item of this comparison {shown}"
        )
    ratings = {}
    for item in items:
        given = value.get(item)
        if not isinstance(given, dict):
            raise InvalidField(
                f"ratings.{item}",
                f"must rate item {item} on every criterion ({', '.join(criteria)}); got {given!r}",
            )
        if extra := sorted(set(given) - set(criteria)):
            raise InvalidField(
                _key_field(f"ratings.{item}", extra[0]),
                f"is not a criterion of this project ({', '.join(criteria)})",
            )
        ratings[item] = {}
        for criterion in criteria:
            rating = given.get(criterion)
            where = f"ratings.{item}.{criterion}"
            if rating is None:
                raise InvalidField(where, "is missing: rate every item on every criterion")
            if isinstance(rating, bool) or not isinstance(rating, int):
                raise InvalidField(
                    where, f"must be a whole number {RATING_MIN}..{RATING_MAX}, got {rating!r}"
                )
            if not RATING_MIN <= rating <= RATING_MAX:
                raise InvalidField(where, f"must be {RATING_MIN}..{RATING_MAX}, got {rating}")
            ratings[item][criterion] = rating
    return ratings


def _key_field(field: str, key: str) -> str:
    """``field.key``, or ``field`` alone when the key itself cannot be shown."""
    return field if unstorable(key) or len(key) > 40 else f"{field}.{key}"


def _critique(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField("critique", f"must be text, got {type(value).__name__}")
    if len(value) > MAX_CRITIQUE_CHARS:
        raise InvalidField(
            "critique", f"holds {len(value)} characters; at most {MAX_CRITIQUE_CHARS}"
        )
    if why := unstorable(value):
        raise InvalidField("critique", why)
    return value if value.strip() else ""


def _edit(value: Any, choice: str) -> str:
    if choice not in WINNER_CHOICES:
        raise InvalidField(
            "edit",
            f"improves the winner; a {choice!r} answer has none (answer left, right or a ranking)",
        )
    if not isinstance(value, str) or not value.strip():
        raise InvalidField("edit", "must be the improved text of the winner")
    if len(value) > MAX_CONTENT_CHARS:
        raise InvalidField("edit", f"holds {len(value)} characters; at most {MAX_CONTENT_CHARS}")
    if why := unstorable(value):
        raise InvalidField("edit", why)
    return value


def store_edit(*, project_id: int, winner_id: int, text: str) -> Item:
    """The annotator's improved winner as an item of its own, in no comparison: the
    winner's prompt, ``text`` as its text and, for a conversation, the winner's messages
    with the final one's content replaced. InvalidField when ``text`` is the winner's."""
    winner = Item.objects.get(pk=winner_id, project_id=project_id)
    if text == winner.text:
        raise InvalidField("edit", "is the winner's text unchanged; send no edit, or change it")
    messages = None
    if winner.messages:
        messages = [*winner.messages[:-1], {**winner.messages[-1], "content": text}]
    return Item.objects.create(
        project_id=project_id,
        prompt=winner.prompt,
        prompt_messages=winner.prompt_messages,
        text=text,
        messages=messages,
        data={"source": "edit", "edit_of": winner.pk},
    )
