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

from django.db import DatabaseError, connection
from django.db.models import Field, Model

from extractor.models import Call, Entry
from extractor.recording.cleaning import row_cleaner

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
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "document_sha",
    "input_preview",
    "error",
    "created_at",
)
CallRow = tuple[Any, ...]  # values in CALL_COLUMNS order
_CHUNK = 1000  # rows per statement at most
# From this many rows on, PostgreSQL gets the rows through COPY: one stream,
# no SQL text to build or parse, several times faster than multi-row INSERTs.
COPY_FROM_ROWS = 500

clean_call_row = row_cleaner(Call, CALL_COLUMNS)


def _insert_sql(rows: int, placeholder: str) -> str:
    quote = connection.ops.quote_name
    table = quote(Call._meta.db_table)
    columns = ", ".join(quote(_column(name)) for name in CALL_COLUMNS)
    values = "(" + ", ".join([placeholder] * len(CALL_COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([values] * rows)


def parameter_limit() -> int:
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
    if connection.vendor == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        _copy_calls(rows)
        return
    per_statement = max(1, min(_CHUNK, parameter_limit() // len(CALL_COLUMNS)))
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
            try:
                with connection.wrap_database_errors:
                    cursor.execute(sql, [value for row in chunk for value in row])
            except DatabaseError as exc:
                exc.add_note(_which_rows(chunk, start))
                raise
    finally:
        cursor.close()


def _copy_calls(rows: Sequence[CallRow]) -> None:
    """COPY through psycopg 3, on the connection (and transaction) Django holds."""
    quote = connection.ops.quote_name
    table = quote(Call._meta.db_table)
    columns = ", ".join(quote(_column(name)) for name in CALL_COLUMNS)
    connection.ensure_connection()
    try:
        with (
            connection.wrap_database_errors,
            connection.connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    except DatabaseError as exc:
        exc.add_note(_which_rows(rows, 0))
        raise


def _which_rows(rows: Sequence[CallRow], offset: int) -> str:
    """Says which records a refused statement held (never their values: secrets)."""
    functions = sorted({str(row[2]) for row in rows})
    outcomes = sorted({str(row[4]) for row in rows})
    return (
        f"call rows {offset}..{offset + len(rows) - 1} of the batch were refused:"
        f" functions {', '.join(functions[:5])}; outcomes {', '.join(outcomes)}"
    )


def add_hits(updates: Sequence[tuple[int, Any, int]]) -> None:
    """(hits, last hit time, entry id) triples: add each to its entry's count and
    move its last hit forward. One statement for many entries (UPDATE ... FROM
    VALUES): a round trip per entry would hand the interpreter to the callers'
    threads and wait for it back, each time."""
    if not updates:
        return
    quote = connection.ops.quote_name
    table = quote(Entry._meta.db_table)
    count, last, pk = quote("hit_count"), quote("last_hit_at"), quote("id")
    if connection.vendor == "postgresql":
        row = "(%s::bigint, %s::timestamptz, %s::bigint)"
    else:
        row = "(%s, %s, %s)"
    per_statement = max(1, min(1000, parameter_limit() // 3))
    with connection.cursor() as cursor:
        for start in range(0, len(updates), per_statement):
            chunk = updates[start : start + per_statement]
            cursor.execute(
                f"WITH hits (n, last, entry) AS (VALUES {', '.join([row] * len(chunk))})"
                f" UPDATE {table} SET {count} = {table}.{count} + hits.n,"
                f" {last} = CASE WHEN {table}.{last} IS NULL OR {table}.{last} < hits.last"
                f" THEN hits.last ELSE {table}.{last} END"
                f" FROM hits WHERE {table}.{pk} = hits.entry",
                [value for update in chunk for value in update],
            )


# A key's live row holds the newest stored value; the arguments are the key's
# own (it was hashed from them), so any record that knows them may fill them in.
_NEWEST_VALUE = (
    "namespace",
    "function",
    "schema_version",
    "code_fingerprint",
    "version",
    "output",
    "llm_provider",
    "llm_model",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "document_sha",
    "latency_ms",
    "created_at",
    "expires_at",
)
_KNOWN_ARGUMENTS = ("arguments", "input_fingerprint", "input_preview")


def upsert_live_entry(fields: dict[str, Any], *, merge: bool = True) -> int:
    """Insert the key's live row and return its id. When the key has a live row
    already (stored meanwhile by another process or thread), converge on it
    instead: with `merge` it takes this record's value if newer and its
    arguments if it lacked them; without, it is kept as it is. One statement
    on the `one_live_entry_per_key` index, so concurrent writers never collide.
    """
    quote = connection.ops.quote_name
    table = quote(Entry._meta.db_table)
    concrete = [field for field in Entry._meta.concrete_fields if not field.primary_key]
    columns, values = [], []
    for field in concrete:
        value = fields[field.name] if field.name in fields else field.get_default()
        if isinstance(value, Model):
            value = value.pk
        columns.append(quote(str(field.column)))
        values.append(field.get_db_prep_save(value, connection))

    def column(name: str) -> str:
        field = Entry._meta.get_field(name)
        assert isinstance(field, Field)
        return quote(str(field.column))

    if merge:
        created, arguments = column("created_at"), column("arguments")
        updates = [
            f"{column(name)} = CASE WHEN excluded.{created} > {table}.{created}"
            f" THEN excluded.{column(name)} ELSE {table}.{column(name)} END"
            for name in _NEWEST_VALUE
        ] + [
            f"{column(name)} = CASE WHEN excluded.{arguments} IS NULL"
            f" THEN {table}.{column(name)} ELSE excluded.{column(name)} END"
            for name in _KNOWN_ARGUMENTS
        ]
    else:
        updates = [f"{column('key')} = excluded.{column('key')}"]
    status = column("status")
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(values))})"
        # The literal predicate lets PostgreSQL match the partial unique index.
        f" ON CONFLICT ({column('key')}) WHERE {status} = '{Entry.Status.LIVE}'"
        f" DO UPDATE SET {', '.join(updates)} RETURNING {column('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return int(row[0])


def replace_live_entry(key: str, *, stored_before: dt.datetime, at: dt.datetime) -> int:
    """Mark the key's live row replaced if it was stored before `stored_before`
    (its value was gone when the call began); a row stored while the call was in
    flight is the same value, and stays. Returns how many rows were replaced."""
    return Entry.objects.filter(
        key=key, status=Entry.Status.LIVE, created_at__lt=stored_before
    ).update(status=Entry.Status.REPLACED, status_changed_at=at)
