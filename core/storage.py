"""Stored files that outlive their rows: deleted once the transaction that deleted the rows
commits (a rolled-back delete keeps them)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.files.storage import default_storage
from django.db import transaction

log = logging.getLogger(__name__)


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
