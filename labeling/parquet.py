"""The export rows (labeling/exports.py) as Parquet: a pyarrow schema per row format, so
a file has the same columns whichever judgements the project holds, and a writer that
holds one row group in memory at a time. ``datasets.load_dataset("parquet",
data_files=path)`` reads what it writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from core import sql
from labeling import feedback
from labeling.exports import is_conversational
from labeling.models import Project

BATCH_ROWS = 2000  # rows per row group: what is held in memory at once

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def rated_criteria(project: Project) -> list[str]:
    """The project's criteria, then any other criterion its judgements rated on (a config
    changed since): the fields of an item's ratings in a Parquet file."""
    named = [name for name, _ in feedback.criteria_of(project.config)]
    rows = sql.fetchall(
        """
        SELECT DISTINCT c.key FROM labeling_judgement j,
            jsonb_each(j.ratings) AS r, jsonb_object_keys(r.value) AS c(key)
        WHERE j.project_id = %s AND jsonb_typeof(j.ratings) = 'object'
        ORDER BY c.key
        """,
        [project.pk],
    )
    return named + [row.key for row in rows if row.key not in named]


def schema(project: Project, kind: str) -> pa.Schema:
    """The columns of ``project``'s ``kind`` export (trl, kto or full) in Parquet."""
    if kind in ("trl", "kto"):
        value = MESSAGES if is_conversational(project) else pa.string()
        if kind == "trl":
            return pa.schema([("prompt", value), ("chosen", value), ("rejected", value)])
        return pa.schema([("prompt", value), ("completion", value), ("label", pa.bool_())])
    ids = pa.list_(pa.int64())
    if project.kind == Project.Kind.TEXT:
        ratings = pa.struct([(name, pa.int64()) for name in rated_criteria(project)])
        item = pa.struct(
            [("id", pa.int64()), ("prompt", pa.string()), ("text", pa.string()),
             ("prompt_messages", MESSAGES), ("messages", MESSAGES), ("ratings", ratings)]
        )  # fmt: skip
        edit = pa.struct([("id", pa.int64()), ("text", pa.string()), ("messages", MESSAGES)])
        answer = [("strength", pa.string()), ("critique", pa.string()), ("edit", edit)]
    else:
        item = pa.struct(
            [("id", pa.int64()), ("episode_seed", pa.int64()), ("start", pa.int64()),
             ("policy_version", pa.int64()), ("true_return", pa.float64()),
             ("segment_url", pa.string()), ("clip_url", pa.string())]
        )  # fmt: skip
        answer = []
    return pa.schema(
        [("judgement_id", pa.int64()), ("comparison_id", pa.int64()),
         ("annotator", pa.string()), ("source", pa.string()), ("choice", pa.string()),
         ("ranking", ids), ("shown_order", ids), ("items", pa.list_(item)), *answer,
         ("time_spent_ms", pa.int64()),
         ("gold", ids),  # a gold tie ("tie" in JSONL) is an empty list
         ("created_at", pa.string()), ("revised_at", pa.string())]
    )  # fmt: skip


def write_parquet(rows: Iterable[dict], columns: pa.Schema, into: BinaryIO) -> int:
    """Write ``rows`` to ``into`` as Parquet with ``columns``, BATCH_ROWS at a
    time; returns how many rows it wrote. A file of no rows has the columns and no row
    group (pyarrow reads it; datasets.load_dataset refuses any file of no rows)."""
    written = 0
    with pq.ParquetWriter(into, columns, compression="zstd") as writer:
        batch: list[dict] = []
        for row in rows:
            if row.get("gold") == "tie":
                row = row | {"gold": []}
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=columns))
                written += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=columns))
            written += len(batch)
    return written
