"""Import of items and comparisons from JSONL: all of a file, or nothing of it; a line
already imported into the project is not stored again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.errors import ImportRejected, ImportTooLarge, InvalidField, InvalidInput
from core.text import unstorable
from labeling import conversations
from labeling.config import MAX_K
from labeling.models import Comparison, ComparisonItem, Item, Project
from labeling.services import record_imported_judgement

MAX_TEXT_CHARS = 50_000
PROGRESS_EVERY = 1000  # lines between two progress reports


@dataclass(frozen=True)
class ImportResult:
    created_items: int
    created_comparisons: int
    created_judgements: int
    skipped_duplicates: int  # lines imported before, or earlier in the same file


@dataclass(frozen=True)
class _Row:
    prompt: str  # a conversation's: flattened
    responses: list[str]  # a conversation's: each one's final content
    judged: bool  # a {"prompt", "chosen", "rejected"} line: responses[0] won
    key: str  # Comparison.import_key: the line's content, hashed
    prompt_messages: list[dict] | None = None  # a conversation's prompt, as messages
    response_messages: list[list[dict]] | None = None  # and each response's messages


def import_key(*, prompt: str | list, responses: list, judged: bool) -> str:
    """SHA-256 of a canonical JSON of a line's content: the same prompt and responses in
    the same order give the same key however the line was spaced or its keys ordered; a
    judged pair and an unjudged pair of the same texts give different keys. A
    conversation's prompt and responses are given as messages (a plain text prompt
    wrapped as one user message first, so both spellings of a line give one key)."""
    if judged:
        chosen, rejected = responses
        content = {"line": "judged", "prompt": prompt, "chosen": chosen, "rejected": rejected}
    else:
        content = {"line": "responses", "prompt": prompt, "responses": responses}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def import_jsonl(
    *,
    project: Project,
    data: bytes,
    importer: AbstractBaseUser,
    progress: Callable[[float], None] | None = None,
) -> ImportResult:
    """Store one comparison per line of ``data``.

    A line is ``{"prompt": str, "responses": [2..K str]}`` (a pair or a ranking task for
    annotators), or ``{"prompt": str, "chosen": str, "rejected": str}`` (a pair already
    judged, recorded as a judgement by ``importer`` and not queued). In either, the
    prompt may be a conversation (a list of chat messages, not ending with an assistant
    turn) and each response a list of assistant messages; a line with any part so is a
    conversation, its plain text parts taken as one user (prompt) or assistant (response)
    message. Blank lines are ignored. The first bad line raises ImportRejected naming it
    (and the bad field, ``prompt[1].role`` say), and nothing is stored.

    A line whose content (see ``import_key``) is already in the project, or earlier in
    ``data``, is not stored again and is counted in ``skipped_duplicates``. Imports into
    one project are serialised on its row lock, so two imports of the same file at once
    store it once. ``progress`` hears the share of the file read, every
    PROGRESS_EVERY lines (before anything is stored, outside the transaction).
    """
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise too_large(len(data))
    return import_lines(project=project, lines=_parse_json(data, progress), importer=importer)


def import_lines(
    *, project: Project, lines: Iterable[tuple[int, Any]], importer: AbstractBaseUser
) -> ImportResult:
    """import_jsonl's work on lines already parsed: (line number, JSON value) pairs, each
    a line form of import_jsonl (manage.py import_dataset maps a dataset's rows to them).
    All or nothing, duplicates skipped, as import_jsonl."""
    if project.kind != Project.Kind.TEXT:
        raise InvalidInput(
            f"Project {project.slug!r} is a {project.kind} project; JSONL import is for text "
            "projects."
        )
    rows = [_row(number, obj) for number, obj in lines]
    if not rows:
        raise ImportRejected(None, "the file holds no JSON lines")
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # serialise imports
        parsed = len(rows)
        rows = _new_rows(project, rows)
        items = Item.objects.bulk_create(
            Item(
                project=project,
                prompt=row.prompt,
                prompt_messages=row.prompt_messages,
                text=text,
                messages=row.response_messages[i] if row.response_messages else None,
                data={"source": "import"},
            )
            for row in rows
            for i, text in enumerate(row.responses)
        )
        comparisons = Comparison.objects.bulk_create(
            Comparison(
                project=project,
                status=Comparison.Status.CLOSED if row.judged else Comparison.Status.OPEN,
                data={"source": "import"},
                import_key=row.key,
            )
            for row in rows
        )
        slots, judged = [], []
        offset = 0
        for row, comparison in zip(rows, comparisons, strict=True):
            row_items = items[offset : offset + len(row.responses)]
            offset += len(row.responses)
            slots.extend(
                ComparisonItem(comparison=comparison, item=item, position=i)
                for i, item in enumerate(row_items)
            )
            if row.judged:
                judged.append((comparison, [item.pk for item in row_items]))
        ComparisonItem.objects.bulk_create(slots)
        for comparison, ranking in judged:
            record_imported_judgement(importer=importer, comparison=comparison, ranking=ranking)
    return ImportResult(len(items), len(comparisons), len(judged), parsed - len(rows))


def too_large(size: int) -> ImportTooLarge:
    return ImportTooLarge(
        f"The file is {size} bytes; the limit is {settings.IMPORT_MAX_BYTES} bytes "
        "(IMPORT_MAX_BYTES). Split it into smaller files."
    )


def _new_rows(project: Project, rows: list[_Row]) -> list[_Row]:
    """The rows whose content is not in ``project`` yet, each content once. Call while
    holding the project's row lock, so no other import adds keys meanwhile."""
    stored = set(
        Comparison.objects.filter(
            project=project, import_key__in=[row.key for row in rows]
        ).values_list("import_key", flat=True)
    )
    new = []
    for row in rows:
        if row.key not in stored:
            stored.add(row.key)
            new.append(row)
    return new


def _parse_json(data: bytes, progress: Callable[[float], None] | None = None):
    read = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        read += len(raw) + 1
        if progress is not None and number % PROGRESS_EVERY == 0:
            progress(min(1.0, read / max(1, len(data))))
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportRejected(number, "not valid UTF-8") from None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportRejected(number, f"not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ImportRejected(number, "JSON nested too deep") from None
        except ValueError as exc:  # an integer of too many digits, say
            raise ImportRejected(number, f"not valid JSON ({exc})") from None
        yield number, obj


def _row(number: int, obj) -> _Row:
    if not isinstance(obj, dict):
        raise ImportRejected(number, "each line must be a JSON object")
    if _is_conversation(obj):
        return _conversation_row(number, obj)
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ImportRejected(number, "'prompt' must be a non-empty string")
    _check_length(number, "prompt", prompt)
    if "responses" in obj:
        extra = set(obj) - {"prompt", "responses"}
        if extra:
            raise ImportRejected(number, f"unexpected keys {sorted(extra)}")
        responses = obj["responses"]
        if not isinstance(responses, list) or not 2 <= len(responses) <= MAX_K:
            raise ImportRejected(number, f"'responses' must be a list of 2 to {MAX_K} strings")
        for i, text in enumerate(responses):
            if not isinstance(text, str) or not text.strip():
                raise ImportRejected(number, f"responses[{i}] must be a non-empty string")
            _check_length(number, f"responses[{i}]", text)
        if len(set(responses)) != len(responses):
            raise ImportRejected(number, "'responses' must be distinct")
        responses = list(responses)
        key = import_key(prompt=prompt, responses=responses, judged=False)
        return _Row(prompt, responses, judged=False, key=key)
    if "chosen" in obj or "rejected" in obj:
        extra = set(obj) - {"prompt", "chosen", "rejected"}
        if extra:
            raise ImportRejected(number, f"unexpected keys {sorted(extra)}")
        pair = []
        for key in ("chosen", "rejected"):
            text = obj.get(key)
            if not isinstance(text, str) or not text.strip():
                raise ImportRejected(number, f"'{key}' must be a non-empty string")
            _check_length(number, key, text)
            pair.append(text)
        if pair[0] == pair[1]:
            raise ImportRejected(number, "'chosen' and 'rejected' must differ")
        key = import_key(prompt=prompt, responses=pair, judged=True)
        return _Row(prompt, pair, judged=True, key=key)
    raise ImportRejected(
        number, "expected {'prompt', 'responses'} or {'prompt', 'chosen', 'rejected'}"
    )


def _is_conversation(obj: dict) -> bool:
    """Whether any part of a line is given as messages."""
    responses = obj.get("responses")
    parts = [obj.get("prompt"), obj.get("chosen"), obj.get("rejected")]
    if isinstance(responses, list):
        parts.extend(responses)
    return any(conversations.is_conversation(part) for part in parts)


def _conversation_row(number: int, obj: dict) -> _Row:
    """A line with messages in it: each part checked as messages, plain text wrapped."""
    if "responses" in obj:
        if extra := set(obj) - {"prompt", "responses"}:
            raise ImportRejected(number, f"unexpected keys {sorted(extra)}")
        given = obj["responses"]
        if not 2 <= len(given) <= MAX_K:
            raise ImportRejected(
                number, f"'responses' must be a list of 2 to {MAX_K} strings or message lists"
            )
        names, judged = [f"responses[{i}]" for i in range(len(given))], False
    else:
        if extra := set(obj) - {"prompt", "chosen", "rejected"}:
            raise ImportRejected(number, f"unexpected keys {sorted(extra)}")
        given, names, judged = (
            [obj.get("chosen"), obj.get("rejected")],
            ["chosen", "rejected"],
            True,
        )
    prompt = _messages(number, "prompt", obj.get("prompt"), role="user")
    responses = [
        _messages(number, name, value, role="assistant")
        for name, value in zip(names, given, strict=True)
    ]
    if len({json.dumps(r, sort_keys=True) for r in responses}) != len(responses):
        raise ImportRejected(
            number,
            "'chosen' and 'rejected' must differ" if judged else "'responses' must be distinct",
        )
    return _Row(
        prompt=conversations.flatten(prompt),
        responses=[conversations.final_content(r) for r in responses],
        judged=judged,
        key=import_key(prompt=prompt, responses=responses, judged=judged),
        prompt_messages=prompt,
        response_messages=responses,
    )


def _messages(number: int, field: str, value: Any, *, role: str) -> list[dict[str, str]]:
    """A conversation line's part as messages: a list checked as messages (a response's
    all assistant turns, a prompt's not ending with one), a plain text as one ``role``
    message; ImportRejected naming the line and the field otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise ImportRejected(number, f"'{field}' must be a non-empty string", field=field)
        _check_length(number, field, value)
        value = [{"role": role, "content": value}]
    elif not isinstance(value, list):
        raise ImportRejected(
            number, f"'{field}' must be a non-empty string or a list of messages", field=field
        )
    try:
        return conversations.check_messages(value, field=field, candidate=role == "assistant")
    except InvalidField as exc:
        raise ImportRejected(number, exc.message, field=exc.field) from None


def _check_length(number: int, key: str, text: str) -> None:
    if why := unstorable(text):
        raise ImportRejected(number, f"'{key}' {why}", field=key)
    if len(text) > MAX_TEXT_CHARS:
        raise ImportRejected(
            number, f"'{key}' is longer than {MAX_TEXT_CHARS} characters", field=key
        )
