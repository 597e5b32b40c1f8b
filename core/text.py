"""What text PostgreSQL can store: no NUL character and no lone UTF-16 surrogate (JSON's
"\\ud800" decodes to one; psycopg then fails to encode it, a 500 instead of a 400)."""

from __future__ import annotations


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    if has_lone_surrogate(text):
        return "contains a lone surrogate (not a character), which cannot be stored"
    return None
