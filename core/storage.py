"""Stored files and the rows that name them.

- Files that outlive their rows are deleted once the transaction that deleted the rows
  commits (a rolled-back delete keeps them): :func:`delete_after_commit`.
- Files written by work that then fails, or loses its claim, are deleted when it does:
  writes go through :func:`save`, and :func:`tracking_writes` collects their names.
- Files no row names (the work's process was killed before it could clean up) are found by
  :func:`unreferenced_files`, for ``manage.py sweep_storage``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

_written: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "core_storage_written", default=None
)


def save(name: str, content) -> str:
    """``default_storage.save``, remembered by an enclosing :func:`tracking_writes`."""
    stored = default_storage.save(name, content)
    if (written := _written.get()) is not None:
        written.append(stored)
    return stored


@contextmanager
def tracking_writes() -> Iterator[list[str]]:
    """Collect the names :func:`save` stores inside the block (in this thread or task)."""
    written: list[str] = []
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)


def delete_now(names: Iterable[str]) -> None:
    """Delete stored files whose rows were never committed."""
    _delete(sorted({name for name in names if name}))


def delete_after_commit(names: Iterable[str]) -> None:
    names = sorted({name for name in names if name})
    if names:
        transaction.on_commit(lambda: _delete(names))


def _delete(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # a storage hiccup must not undo the delete; the file is orphaned
            log.exception("could not delete %s from storage", name)


# --- the sweep -------------------------------------------------------------------------------
def referenced_files() -> set[str]:
    """Every name a FileField of any installed model holds (one query per field)."""
    names: set[str] = set()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.FileField):
                rows = model._default_manager.exclude(**{field.name: ""}).exclude(
                    **{f"{field.name}__isnull": True}
                )
                names.update(rows.values_list(field.name, flat=True))
    return names


def stored_files(top: str = "") -> Iterator[tuple[str, datetime]]:
    """Every stored file under ``top``, with its modification time."""
    try:
        directories, files = default_storage.listdir(top)
    except FileNotFoundError:
        return
    for name in files:
        path = f"{top}/{name}" if top else name
        yield path, default_storage.get_modified_time(path)
    for directory in directories:
        yield from stored_files(f"{top}/{directory}" if top else directory)


def unreferenced_files(*, older_than: timedelta) -> list[str]:
    """Stored files that no row names and that are older than ``older_than`` (work still
    running writes its files before the row that names them)."""
    cutoff = timezone.now() - older_than
    referenced = referenced_files()
    return sorted(
        name for name, modified in stored_files() if name not in referenced and modified < cutoff
    )
