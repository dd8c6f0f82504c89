"""The exact counters: CallRollup rows, added to with one upsert per batch.

Each write adds its counts to the rows of its hours and of their local days
(INSERT ... ON CONFLICT DO UPDATE SET calls = calls + excluded.calls): several
processes add to the same rows without reading them, so nothing is counted
twice or lost between them. Rows are written in one order (their unique key)
so two writers never wait on each other in a cycle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from extractor.models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, Call, CallRollup
from extractor.recording.cleaning import field_cleaner
from extractor.recording.inserts import parameter_limit, timestamp_adapter
from extractor.recording.tally import HOUR, Latencies

IDENTITY = ("span", "bucket_start", "function", "schema_version_id", "llm_model", "outcome")
SUMMED = (
    "calls",
    "itemised",
    "without_entry",
    "coalesced",
    "latency_ms_sum",
    *LATENCY_COLUMNS,
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "original_latency_ms_sum",
)
COLUMNS = (*IDENTITY, *SUMMED, "latency_ms_max")

_clip_function = field_cleaner(CallRollup, "function")
_clip_model = field_cleaner(CallRollup, "llm_model")


@dataclass(slots=True)
class Counts:
    """What is added to one rollup row."""

    calls: int = 0
    itemised: int = 0
    without_entry: int = 0
    coalesced: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    slots: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    original_latency_ms_sum: float = 0.0

    def add(self, other: Counts) -> None:
        self.calls += other.calls
        self.itemised += other.itemised
        self.without_entry += other.without_entry
        self.coalesced += other.coalesced
        self.latency_ms_sum += other.latency_ms_sum
        self.latency_ms_max = max(self.latency_ms_max, other.latency_ms_max)
        self.slots = [mine + theirs for mine, theirs in zip(self.slots, other.slots, strict=True)]
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_write_1h_tokens += other.cache_write_1h_tokens
        self.original_latency_ms_sum += other.original_latency_ms_sum

    def values(self) -> tuple[Any, ...]:
        """In SUMMED order, then latency_ms_max."""
        return (
            self.calls,
            self.itemised,
            self.without_entry,
            self.coalesced,
            self.latency_ms_sum,
            *self.slots,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_prompt_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.original_latency_ms_sum,
            self.latency_ms_max,
        )


def counts_of(
    latencies: Latencies,
    *,
    itemised: int,
    without_entry: int = 0,
    coalesced: int = 0,
    tokens: tuple[int, int, int] = (0, 0, 0),
    writes: tuple[int, int] = (0, 0),
    original_latency_ms: float = 0.0,
) -> Counts:
    """Counts of calls whose latencies (seconds) were folded into `latencies`.

    tokens: (prompt, completion, cache reads); writes: (prompt-cache writes, of
    which 1-hour), as Usage counts them.
    """
    prompt, completion, cached = tokens
    written, written_1h = writes
    return Counts(
        calls=latencies.count,
        itemised=itemised,
        without_entry=without_entry,
        coalesced=coalesced,
        latency_ms_sum=latencies.total * 1000,
        latency_ms_max=latencies.longest * 1000,
        slots=list(latencies.slots),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=cached,
        cache_write_tokens=written,
        cache_write_1h_tokens=written_1h,
        original_latency_ms_sum=original_latency_ms,
    )


# unix hour, function, schema version id, model, outcome
RowIdentity = tuple[int, str, int, str, str]


class Rollups:
    """Counts of one batch, per hour x function x schema version x model x outcome."""

    def __init__(self) -> None:
        self.hours: dict[RowIdentity, Counts] = {}

    def add(
        self, hour: int, function: str, version_id: int, model: str, outcome: str, counts: Counts
    ) -> None:
        identity = (hour, _clip_function(function), version_id, _clip_model(model or ""), outcome)
        mine = self.hours.get(identity)
        if mine is None:
            self.hours[identity] = counts
        else:
            mine.add(counts)

    def write(self, *, columns: tuple[str, ...] = COLUMNS) -> None:
        if not self.hours:
            return
        to_db = timestamp_adapter()
        days: dict[RowIdentity, Counts] = {}
        day_of: dict[int, int] = {}
        rows: list[tuple[Any, ...]] = []
        for (hour, function, version_id, model, outcome), counts in self.hours.items():
            rest = (function, version_id, model, outcome)
            rows.append((CallRollup.Span.HOUR, to_db(hour * HOUR), *rest, *counts.values()))
            if hour not in day_of:
                day_of[hour] = local_day_start(hour * HOUR)
            day_counts = days.setdefault((day_of[hour], *rest), Counts())
            day_counts.add(counts)
        for (day, *identity), counts in days.items():
            rows.append((CallRollup.Span.DAY, to_db(day), *identity, *counts.values()))
        upsert(rows, columns=columns)


def local_day_start(unix: float) -> int:
    """Unix time of the start of the day holding `unix` in settings.TIME_ZONE."""
    local = timezone.localtime(dt.datetime.fromtimestamp(unix, dt.UTC))
    midnight = timezone.make_aware(dt.datetime.combine(local.date(), dt.time.min))
    return int(midnight.timestamp())


def upsert(rows: list[tuple[Any, ...]], *, columns: tuple[str, ...] = COLUMNS) -> None:
    """Add rows (values in COLUMNS order) to the counters.

    `columns`: the ones the table has, when a migration runs this before later
    migrations added the rest (their values are dropped).
    """
    if columns != COLUMNS:
        kept = [COLUMNS.index(name) for name in columns]
        rows = [tuple(row[index] for index in kept) for row in rows]
    quote = connection.ops.quote_name
    table = quote(CallRollup._meta.db_table)
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"
    updates = [
        f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}"
        for name in SUMMED
        if name in columns
    ]
    updates.append(
        f"{quote('latency_ms_max')} = {greatest}({table}.{quote('latency_ms_max')},"
        f" excluded.{quote('latency_ms_max')})"
    )
    head = f"INSERT INTO {table} ({', '.join(quote(name) for name in columns)}) VALUES "
    tail = (
        f" ON CONFLICT ({', '.join(quote(name) for name in IDENTITY)})"
        f" DO UPDATE SET {', '.join(updates)}"
    )
    values = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per_statement = max(1, min(500, parameter_limit() // len(columns)))
    # One order for every writer: concurrent upserts lock rows in the same sequence.
    rows.sort(key=lambda row: tuple(str(value) for value in row[: len(IDENTITY)]))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(
                head + ", ".join([values] * len(chunk)) + tail,
                [value for row in chunk for value in row],
            )


def rebuild_from_calls(call_model: type[Call] = Call) -> int:
    """Recount every counter from the call log; return how many hour rows it made.

    For a call log that predates the counters (the migration that added them)
    and for tests that lay out calls directly. It replaces every counter, so it
    is right only while the call log still holds every call. Calls with no
    schema version (neither their own nor their entry's) cannot be filed.
    A migration passes its historical Call model. The call log does not say
    which hits waited for another caller's computation, so `coalesced` starts
    again at 0.
    """
    bounds = (None, *LATENCY_BOUNDS_MS)
    slots = {
        column: Count(
            "id",
            filter=(Q(latency_ms__gt=low) if low is not None else Q())
            & (Q(latency_ms__lte=high) if high is not None else Q()),
        )
        for column, low, high in zip(
            LATENCY_COLUMNS, bounds, (*LATENCY_BOUNDS_MS, None), strict=True
        )
    }
    filed = call_model.objects.annotate(
        hour=TruncHour("created_at", tzinfo=dt.UTC),
        version=Coalesce("schema_version_id", "entry__schema_version_id"),
    ).filter(version__isnull=False)
    common = {
        "calls": Count("id"),
        "latency_sum": Sum("latency_ms"),
        "latency_max": Max("latency_ms"),
        **slots,
    }
    # A hit is filed under the model of the entry that served it, and counts
    # what that entry's LLM call cost: what the hit saved.
    hits = (
        filed.filter(outcome=Call.Outcome.HIT)
        .values("hour", "function", "version", "outcome", "entry__llm_model")
        .annotate(
            **common,
            without_entry=Count("id", filter=Q(entry__isnull=True)),
            prompt=Sum("entry__prompt_tokens"),
            completion=Sum("entry__completion_tokens"),
            cached=Sum("entry__cached_prompt_tokens"),
            **_write_sums(call_model, "entry__"),
            original=Sum("entry__latency_ms"),
        )
        .order_by()
    )
    others = (
        filed.exclude(outcome=Call.Outcome.HIT)
        .values("hour", "function", "version", "outcome", "llm_model")
        .annotate(
            **common,
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cached=Sum("cached_prompt_tokens"),
            **_write_sums(call_model, ""),
        )
        .order_by()
    )
    rollups = Rollups()
    groups: list[dict[str, Any]] = [dict(group) for group in (*hits, *others)]
    for group in groups:
        counts = Counts(
            calls=group["calls"],
            itemised=group["calls"],
            without_entry=group.get("without_entry", 0),
            latency_ms_sum=group["latency_sum"] or 0.0,
            latency_ms_max=group["latency_max"] or 0.0,
            slots=[group[column] for column in LATENCY_COLUMNS],
            prompt_tokens=group["prompt"] or 0,
            completion_tokens=group["completion"] or 0,
            cached_prompt_tokens=group["cached"] or 0,
            cache_write_tokens=group.get("written") or 0,
            cache_write_1h_tokens=group.get("written_1h") or 0,
            original_latency_ms_sum=group.get("original") or 0.0,
        )
        model = group.get("entry__llm_model", group.get("llm_model")) or ""
        hour = int(group["hour"].timestamp()) // HOUR
        rollups.add(hour, group["function"], group["version"], model, group["outcome"], counts)
    with transaction.atomic():
        CallRollup.objects.all().delete()
        # A migration's table may lack columns added after it (coalesced).
        rollup_model = call_model._meta.apps.get_model("extractor", "CallRollup")
        present = {field.column for field in rollup_model._meta.concrete_fields}
        rollups.write(columns=tuple(name for name in COLUMNS if name in present))
    return len(rollups.hours)


def _write_sums(call_model: type[Call], prefix: str) -> dict[str, Sum]:
    """The prompt-cache write sums, where the (historical) call log has the columns."""
    if "cache_write_tokens" not in {field.name for field in call_model._meta.concrete_fields}:
        return {}
    return {
        "written": Sum(f"{prefix}cache_write_tokens"),
        "written_1h": Sum(f"{prefix}cache_write_1h_tokens"),
    }
