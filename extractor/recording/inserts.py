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
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Field

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
_CHUNK = 1000  # rows per statement at most


def _insert_sql(rows: int, placeholder: str) -> str:
    quote = connection.ops.quote_name
    table = quote(Call._meta.db_table)
    columns = ", ".join(quote(_column(name)) for name in CALL_COLUMNS)
    values = "(" + ", ".join([placeholder] * len(CALL_COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([values] * rows)


def _parameter_limit() -> int:
    if connection.vendor == "sqlite":
        # Django assumes SQLite's historic 999; the linked library says what it takes.
        connection.ensure_connection()
        return int(connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 60_000  # PostgreSQL's protocol allows 65535 parameters per statement


def _column(name: str) -> str:
    field = Call._meta.get_field(_field(name))
    assert isinstance(field, Field)
    return str(field.column)


def _field(column: str) -> str:
    return column.removesuffix("_id") if column in ("entry_id", "schema_version_id") else column


def timestamp_adapter() -> Callable[[float], Any]:
    """Unix time -> the value the database driver takes for a DateTimeField.

    The conversion Django's adapt_datetimefield_value makes with USE_TZ, without
    its per-value lookups: SQLite stores naive UTC text, others take an aware
    datetime. A batch of hits mostly falls within a few seconds, so the text up
    to the second is formatted once per second.
    """
    if connection.vendor != "sqlite":
        return lambda ts: dt.datetime.fromtimestamp(ts, dt.UTC)
    seconds: dict[int, str] = {}

    def sqlite_text(ts: float) -> str:
        whole = int(ts)
        prefix = seconds.get(whole)
        if prefix is None:
            prefix = seconds[whole] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{prefix}.{int((ts - whole) * 1_000_000):06d}"

    return sqlite_text


def insert_calls(rows: Sequence[CallRow]) -> None:
    """Many rows per statement: SQLite's driver releases the interpreter lock once per
    statement step, and each hand-back costs the callers' threads a switch. On SQLite
    the statement goes to the driver's own cursor (same connection and transaction),
    skipping Django's placeholder rewriting of a very long SQL string."""
    if not rows:
        return
    per_statement = max(1, min(_CHUNK, _parameter_limit() // len(CALL_COLUMNS)))
    sqlite = connection.vendor == "sqlite"
    connection.ensure_connection()
    cursor = connection.connection.cursor() if sqlite else connection.cursor()
    placeholder = "?" if sqlite else "%s"
    statements: dict[int, str] = {}
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = statements.get(len(chunk)) or statements.setdefault(
                len(chunk), _insert_sql(len(chunk), placeholder)
            )
            # Django's error classes, as from its own cursors (IntegrityError, ...).
            with connection.wrap_database_errors:
                cursor.execute(sql, [value for row in chunk for value in row])
    finally:
        cursor.close()


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
