"""Fast writes of call rows and hit counts: plain tuples, many rows per statement.

`bulk_create` spends ~60 µs of Python per row preparing model instances; a
hit costs a few µs, so at hit rates the writer thread would fall behind and
steal the interpreter from the callers it is recording. Plain tuples cost a
small fraction of that. Columns come from the model, so migrations stay the
single source of truth.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection

from extractor.models import Call, Entry

CALL_COLUMNS = (
    "entry_id",
    "key",
    "function",
    "schema_version_id",
    "outcome",
    "miss_reason",
    "reason_detail",
    "latency_ms",
    "llm_provider",
    "llm_model",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "input_preview",
    "error",
    "created_at",
)
CallRow = tuple[Any, ...]  # values in CALL_COLUMNS order
_CHUNK = 1000


def _insert_sql(rows: int) -> str:
    quote = connection.ops.quote_name
    table = quote(Call._meta.db_table)
    columns = ", ".join(quote(Call._meta.get_field(_field(c)).column) for c in CALL_COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * len(CALL_COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([placeholders] * rows)


def _parameter_limit() -> int:
    if connection.vendor == "sqlite":
        # Django assumes SQLite's historic 999; the linked library says what it takes.
        connection.ensure_connection()
        raw = connection.connection
        return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 60_000  # PostgreSQL's protocol allows 65535 parameters per statement


def _field(column: str) -> str:
    return column.removesuffix("_id") if column in ("entry_id", "schema_version_id") else column


def timestamp_adapter() -> Callable[[float], Any]:
    """Unix time -> the value the database driver takes for a DateTimeField.

    The same conversion Django's adapt_datetimefield_value makes with USE_TZ,
    without its per-value lookups: SQLite stores naive UTC text, others take
    an aware datetime.
    """
    if connection.vendor == "sqlite":
        return lambda ts: str(dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None))
    return lambda ts: dt.datetime.fromtimestamp(ts, dt.UTC)


def insert_calls(rows: Sequence[CallRow]) -> None:
    """Many rows per statement: SQLite's driver releases the interpreter lock once per
    statement step, and each hand-back costs the callers' threads a switch."""
    if not rows:
        return
    per_statement = max(1, min(_CHUNK, _parameter_limit() // len(CALL_COLUMNS)))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])


def add_hits(updates: Sequence[tuple[int, Any, int]]) -> None:
    """(hits, last hit time, entry id) triples: bump each entry's count and last hit."""
    if not updates:
        return
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(Entry._meta.db_table)} SET"
        f" {quote('hit_count')} = {quote('hit_count')} + %s,"
        f" {quote('last_hit_at')} = %s"
        f" WHERE {quote('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, updates)
