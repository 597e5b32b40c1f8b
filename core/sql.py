"""A few helpers for the SQL that the hot paths (next, judge, token lookup) run directly.

Building a query with the ORM costs about a millisecond of CPU here; these calls cost the
round trip. Rows come back as named tuples, typed by psycopg (jsonb stays text: Django
registers it so, and callers json.loads what they need).
"""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache

from django.db import connection


@lru_cache(maxsize=64)
def _row_type(names: tuple[str, ...]):
    return namedtuple("Row", names)


def _named(cursor, row):
    if row is None:
        return None
    return _row_type(tuple(column.name for column in cursor.description))(*row)


def fetchone(query: str, params=None):
    """The first row as a named tuple, or None."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return _named(cursor, cursor.fetchone())


def fetchall(query: str, params=None) -> list:
    """Every row as a named tuple."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return [_named(cursor, row) for row in cursor.fetchall()]


def execute(query: str, params=None) -> int:
    """Run a statement; returns the number of rows it touched."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.rowcount


def model_columns(model, alias: str, prefix: str = "") -> str:
    """The select list for every concrete column of ``model``, named by attribute (after
    ``prefix``, to keep them apart from other columns of the same row)."""
    return ", ".join(
        f'{alias}."{field.column}" AS "{prefix}{field.attname}"'
        for field in model._meta.concrete_fields
    )


def model_from_row(model, row):
    """An instance of ``model`` from a row selected with model_columns (database values
    converted as the ORM would: JSON decoded); extra columns after them are ignored."""
    values = []
    for field, value in zip(model._meta.concrete_fields, row, strict=False):
        if value is not None and hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        values.append(value)
    return model.from_db(connection.alias, None, values)
