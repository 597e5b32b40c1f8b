"""The API's JSON parser: DRF's, with the limits a request body must meet before any view
sees it, each a 400 that says what is wrong rather than a 500."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.text import has_lone_surrogate


class JSONParser(parsers.JSONParser):
    """Refuses nesting deeper than JSON_MAX_DEPTH, integers too long to convert, and lone
    surrogates, which no text column can hold (a NUL is left to the field that gets it, to
    be named in its 400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(stream.read().decode(encoding), parse_constant=_no_constant)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {settings.JSON_MAX_DEPTH} levels.") from None
        except UnicodeDecodeError:
            raise ParseError(f"The body is not valid {encoding}.") from None
        except ValueError as exc:  # JSONDecodeError, or an integer of too many digits
            raise ParseError(f"JSON parse error - {exc}") from None
        check_json(data, max_depth=settings.JSON_MAX_DEPTH)
        return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def check_json(data, *, max_depth: int) -> None:
    """ParseError unless ``data`` nests at most ``max_depth`` levels and no string in it
    (keys too) holds a lone surrogate."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels.")
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, str) and has_lone_surrogate(value):
            raise ParseError(
                f"A string contains a lone surrogate (not a character): {value[:40]!r}."
            )
