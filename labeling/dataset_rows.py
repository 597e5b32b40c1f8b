"""A Hugging Face dataset's rows as import lines (labeling.imports): which columns mean
what, and the prompt a preference dataset leaves implicit.

Columns, in the order they are looked for (the first set a dataset has wins, any other
column is left alone):

- ``prompt``, ``chosen``, ``rejected``: a judged pair; each a string or a list of
  messages. Where chosen and rejected are message lists that begin with the same
  messages and the prompt is a string, those messages are the prompt (as TRL's
  ``maybe_extract_prompt``).
- ``chosen``, ``rejected``: a judged pair whose prompt is the part both begin with: the
  common leading messages, or for strings the common leading text (TRL's
  ``extract_prompt``).
- ``prompt``, ``responses``: 2..K candidates for annotators to judge.
- ``messages``: a conversation whose final assistant turn(s) are a response to the turns
  before; rows with the same turns before become one comparison of their responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidField
from labeling.config import MAX_K
from labeling.conversations import check_messages

COLUMN_SETS = (
    ("prompt", "chosen", "rejected"),
    ("chosen", "rejected"),
    ("prompt", "responses"),
    ("messages",),
)


class RowError(Exception):
    """Row ``row`` (0-based, as ``dataset[row]``) cannot be imported; ``message`` names
    the field."""

    def __init__(self, row: int, message: str):
        super().__init__(f"row {row}: {message}")
        self.row = row
        self.message = message


def columns_for(names: Iterable[str]) -> tuple[str, ...] | None:
    """The first of COLUMN_SETS that ``names`` hold, or None."""
    names = set(names)
    return next((wanted for wanted in COLUMN_SETS if set(wanted) <= names), None)


def lines(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(row number, import line) for each row of ``rows`` read through ``columns`` (one
    of COLUMN_SETS); a ``messages`` dataset gives a line per prompt, numbered by its first
    row. RowError for a row that cannot be a line."""
    if columns == ("messages",):
        return _conversations(rows)
    found = []
    for number, row in enumerate(rows):
        value = {name: _plain(row[name]) for name in columns}
        if "chosen" in value:
            value = _with_prompt(number, value)
        found.append((number, value))
    return found


def _plain(value: Any) -> Any:
    """A dataset's value as an import line holds it: messages without the keys a
    dataset's schema fills with None (a column other rows have)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def _checked(
    number: int, value: list, field: str, *, candidate: bool, first: int = 0
) -> list[dict]:
    """check_messages of ``value``, the messages from ``first`` on of ``field``."""
    try:
        return check_messages(value, field=field, candidate=candidate)
    except InvalidField as exc:
        where = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m[1]) + first}]", exc.message, count=1)
        raise RowError(number, where) from None


def _with_prompt(number: int, row: dict) -> dict:
    """A chosen/rejected row with its prompt: the explicit one, or the part chosen and
    rejected share."""
    chosen, rejected = row["chosen"], row["rejected"]
    prompt = row.get("prompt")
    if isinstance(chosen, list) and isinstance(rejected, list):
        if not isinstance(prompt, list):  # none, or a string beside whole conversations
            shared = _shared_turns(chosen, rejected)
            if shared:
                return {"prompt": shared, "chosen": chosen[len(shared) :],
                        "rejected": rejected[len(shared) :]}  # fmt: skip
        if prompt is None:
            raise RowError(
                number, "chosen, rejected: no prompt column, and they begin with no common "
                "user turn to be the prompt"
            )  # fmt: skip
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if prompt is not None:
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise RowError(number, "chosen, rejected: must both be strings or both message lists")
    cut = _shared_text(chosen, rejected)
    if not chosen[:cut].strip():
        raise RowError(
            number, "chosen, rejected: no prompt column, and they begin with no common text "
            "to be the prompt"
        )  # fmt: skip
    return {"prompt": chosen[:cut], "chosen": chosen[cut:], "rejected": rejected[cut:]}


def _shared_turns(chosen: list, rejected: list) -> list:
    """The messages both begin with, up to the last that is not the assistant's (the
    responses start with the assistant's turns)."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    while n and isinstance(chosen[n - 1], dict) and chosen[n - 1].get("role") == "assistant":
        n -= 1
    return chosen[:n]


def _shared_text(chosen: str, rejected: str) -> int:
    """Where the text both begin with ends; a space before the first difference goes with
    the responses (TRL's extract_prompt)."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n and chosen[n - 1] == " ":
        n -= 1
    return n


@dataclass
class _Group:
    first_row: int
    prompt: list[dict]
    responses: list[list[dict]]


def _conversations(rows: Iterable[dict[str, Any]]) -> list[tuple[int, dict]]:
    groups: dict[str, _Group] = {}
    for number, row in enumerate(rows):
        prompt, response = _split_final_turn(number, _plain(row["messages"]))
        key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
        group = groups.setdefault(key, _Group(number, prompt, []))
        group.responses.append(response)
    found = []
    for group in groups.values():
        if not 2 <= len(group.responses) <= MAX_K:
            raise RowError(
                group.first_row,
                f"messages: {len(group.responses)} rows end the same conversation with a "
                f"response; a comparison takes 2 to {MAX_K}",
            )
        found.append((group.first_row, {"prompt": group.prompt, "responses": group.responses}))
    return found


def _split_final_turn(number: int, messages: Any) -> tuple[list[dict], list[dict]]:
    """(the turns before, the final assistant turns) of a conversation, each checked."""
    if not isinstance(messages, list) or not messages:
        raise RowError(number, "messages: must be a non-empty list of messages {role, content}")
    cut = len(messages)
    while (
        cut
        and isinstance(messages[cut - 1], dict)
        and messages[cut - 1].get("role") == ("assistant")
    ):
        cut -= 1
    if cut == len(messages):
        raise RowError(
            number,
            f"messages[{cut - 1}].role: the final turn must be the assistant's response; "
            f"got {messages[-1].get('role') if isinstance(messages[-1], dict) else messages[-1]!r}",
        )
    prompt = _checked(number, messages[:cut], "messages", candidate=False)
    response = _checked(number, messages[cut:], "messages", candidate=True, first=cut)
    return prompt, response
