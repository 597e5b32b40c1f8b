"""Conversations: a text item's prompt as a list of chat messages, a candidate as the
assistant messages that answer it.

A message is ``{"role": "system" | "user" | "assistant", "content": str}``. A prompt is
1..MAX_MESSAGES of them; a candidate is 1..MAX_MESSAGES assistant messages, the last of
which is the one trained on (training renders the rest as context). Labeling stores the
messages as given (``Item.prompt_messages``, ``Item.messages``) and a flattened text beside
them (``Item.prompt``, ``Item.text``) for the admin, search and plain-text consumers.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidField
from core.text import unstorable

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 64
MAX_CONTENT_CHARS = 50_000


def is_conversation(value: Any) -> bool:
    """Whether ``value`` is meant as messages (a list) rather than plain text."""
    return isinstance(value, list)


def check_messages(value: Any, *, field: str, candidate: bool = False) -> list[dict[str, str]]:
    """``value`` as a list of messages, or InvalidField naming the bad part
    (``field[i].role``, say). A ``candidate`` holds assistant messages only; a prompt may
    hold any role but must not end with an assistant turn (the candidate answers it)."""
    if not isinstance(value, list) or not value:
        raise InvalidField(field, "must be a non-empty list of messages {role, content}")
    if len(value) > MAX_MESSAGES:
        raise InvalidField(field, f"holds {len(value)} messages; at most {MAX_MESSAGES}")
    messages = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise InvalidField(where, "must be an object {role, content}")
        if extra := set(message) - {"role", "content"}:
            raise InvalidField(where, f"unexpected keys {sorted(extra)}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidField(f"{where}.role", f"must be one of {', '.join(ROLES)}; got {role!r}")
        if candidate and role != "assistant":
            raise InvalidField(
                f"{where}.role", f"a response holds assistant turns only; got {role!r}"
            )
        if not isinstance(content, str) or not content.strip():
            raise InvalidField(f"{where}.content", "must be a non-empty string")
        if why := unstorable(content):
            raise InvalidField(f"{where}.content", why)
        if len(content) > MAX_CONTENT_CHARS:
            raise InvalidField(f"{where}.content", f"is longer than {MAX_CONTENT_CHARS} characters")
        messages.append({"role": role, "content": content})
    if not candidate and messages[-1]["role"] == "assistant":
        raise InvalidField(
            f"{field}[{len(messages) - 1}].role",
            "a prompt must end with a user (or system) turn, which the responses answer",
        )
    return messages


def flatten(messages: list[dict[str, str]]) -> str:
    """Messages as one text, a turn per paragraph: ``user: ...``."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def final_content(messages: list[dict[str, str]]) -> str:
    """The content of a candidate's final (trained-on) assistant message."""
    return messages[-1]["content"]
