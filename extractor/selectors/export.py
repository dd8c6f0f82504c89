"""Exports: every row a list's filters select, in the list's order, shaped as named rows.

A list page reads one page; an export reads the whole selection, BATCH_SIZE rows a
query, each batch starting after the last row of the one before (the list's own
keyset pagination). Each query is short and walks the list's index from where the
last one stopped, so a million entries never sit in memory nor behind one query
held open for the whole download (which on SQLite would keep a read transaction,
and the WAL it pins, open while the recorder writes). Like paging, rows changed
while an export runs may move in or out of it; rows already read are not re-read.

The rows hold plain values: ids, numbers and text, times as ISO 8601 in UTC, and
the JSON columns (`json_columns`) as the decoded JSON; the view encodes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from django.db import models
from django.db.models import QuerySet
from django.utils import timezone

from extractor.models import Call, Entry
from extractor.selectors.calls import NEWEST_FIRST, CallFilters, calls_matching
from extractor.selectors.entries import (
    CurrentCode,
    EntryFilters,
    current_code,
    entries_matching,
    entry_ordering,
    is_stale,
)
from extractor.selectors.keyset import Cursor, Ordering, keyset_page

# Rows a query reads (read at each batch, so a test can make it small).
BATCH_SIZE = 2_000

M = TypeVar("M", bound=models.Model)


class EntryRow(NamedTuple):
    id: int
    key: str
    function: str
    schema: str  # the response model's dotted name
    schema_version: str  # "v2"
    llm_model: str
    status: str  # see entry_status
    created_at: str
    hits: int
    last_hit_at: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    llm_latency_ms: float  # what the LLM call that made the value took
    input: Any  # the arguments as recorded (redacted); None when first seen on a hit
    output: Any


class CallRow(NamedTuple):
    id: int
    created_at: str
    outcome: str
    miss_reason: str
    miss_detail: str
    function: str
    llm_model: str
    key: str
    entry_id: int | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    error: str


@dataclass(frozen=True)
class Export:
    name: str  # "entries" or "calls": the file name starts with it
    columns: tuple[str, ...]
    json_columns: frozenset[str]  # hold JSON values (JSON text in a CSV cell)
    batches: Iterator[list[tuple[Any, ...]]]  # lazy: read as the response is sent


def entry_export(filters: EntryFilters) -> Export:
    """Every entry the list shows for `filters`, in its sort's order."""
    return Export(
        name="entries",
        columns=EntryRow._fields,
        json_columns=frozenset({"input", "output"}),
        batches=_entry_batches(filters),
    )


def call_export(filters: CallFilters) -> Export:
    """Every call the log shows for `filters`, newest first."""
    return Export(
        name="calls",
        columns=CallRow._fields,
        json_columns=frozenset(),
        batches=_call_batches(filters),
    )


def entry_status(entry: Entry, current: CurrentCode, now: dt.datetime) -> str:
    """One word for where an entry stands, as the list's badge and "Show" filter mean it:
    "live" is served to callers (live, unexpired, not stale); a live row made by older
    code or schema is "stale" (even once expired too: no caller reaches it either way),
    else "expired" once its TTL ran out; other rows keep their status ("invalidating",
    "invalidated", "replaced")."""
    if entry.status != Entry.Status.LIVE:
        return str(entry.status)
    if is_stale(entry, current):
        return "stale"
    if entry.expires_at is not None and entry.expires_at <= now:
        return "expired"
    return "live"


def _entry_batches(filters: EntryFilters) -> Iterator[list[tuple[Any, ...]]]:
    current = current_code()
    # Before the filters read the clock, so "live" here never outlives the filter's.
    now = timezone.now()
    entries = (
        entries_matching(filters, current)
        .select_related("schema_version")
        .defer("schema_version__json_schema")
    )
    for batch in _batches(entries, entry_ordering(filters.sort)):
        yield [_entry_row(entry, current, now) for entry in batch]


def _entry_row(entry: Entry, current: CurrentCode, now: dt.datetime) -> EntryRow:
    version = entry.schema_version
    return EntryRow(
        id=entry.pk,
        key=entry.key,
        function=entry.function,
        schema=version.name,
        schema_version=version.label,
        llm_model=entry.llm_model,
        status=entry_status(entry, current, now),
        created_at=_utc(entry.created_at),
        hits=entry.hit_count,
        last_hit_at=_utc(entry.last_hit_at) if entry.last_hit_at else None,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        cached_prompt_tokens=entry.cached_prompt_tokens,
        llm_latency_ms=entry.latency_ms,
        input=entry.arguments,
        output=entry.output_in_field_order,
    )


def _call_batches(filters: CallFilters) -> Iterator[list[tuple[Any, ...]]]:
    for batch in _batches(calls_matching(filters), NEWEST_FIRST):
        yield [_call_row(call) for call in batch]


def _call_row(call: Call) -> CallRow:
    return CallRow(
        id=call.pk,
        created_at=_utc(call.created_at),
        outcome=call.outcome,
        miss_reason=call.miss_reason,
        miss_detail=call.reason_detail,
        function=call.function,
        llm_model=call.llm_model,
        key=call.key,
        entry_id=call.entry_id,
        latency_ms=call.latency_ms,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cached_prompt_tokens=call.cached_prompt_tokens,
        error=call.error,
    )


def _batches(queryset: QuerySet[M], ordering: Ordering) -> Iterator[list[M]]:
    """The whole of `queryset` in `ordering`, BATCH_SIZE rows a query."""
    cursor: Cursor | None = None
    while True:
        page = keyset_page(queryset, ordering, cursor, BATCH_SIZE)
        if page.object_list:
            yield page.object_list
        if not page.has_next:
            return
        last = page.object_list[-1]
        cursor = Cursor(tuple(getattr(last, key.field) for key in ordering.keys))


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()
