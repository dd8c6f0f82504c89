"""Writes a tally (tally.py) in one transaction: schema versions, entries,
call rows, hit counts and counters.

Misses are few (each one paid for an LLM call): the entries that explain them
are read once for the whole batch, then each stored value is one upsert on
the key's live row (two processes that computed the same key at once converge
on one row). Hits arrive folded per key: one UPDATE per entry for its count
and last hit, multi-row INSERTs (COPY on PostgreSQL) for the hits itemised,
and one upsert per counter row (rollups.py). Every value is cleaned first
(cleaning.py), so the database never refuses a batch for a value it holds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max

from extractor.caching import registry
from extractor.caching.defaults import current as current_defaults
from extractor.caching.defaults import default_backend
from extractor.caching.envelope import Envelope, envelope_type
from extractor.caching.events import CallEvent, FunctionInfo, Outcome, Record, wall_time
from extractor.models import CachedFunction, DroppedRecords, Entry, SchemaVersion
from extractor.recording.cleaning import clean_fields, field_cleaner
from extractor.recording.inserts import (
    CallRow,
    add_hits,
    clean_call_row,
    insert_calls,
    replace_live_entry,
    timestamp_adapter,
    upsert_live_entry,
)
from extractor.recording.previews import input_fingerprint, input_preview, model_of
from extractor.recording.reasons import EarlierEntries, MissContext, explain_miss
from extractor.recording.rollups import Counts, Rollups, counts_of
from extractor.recording.tally import HOUR, KeyHits, Latencies, Tally
from extractor.redaction import redact, redact_value

logger = logging.getLogger("extractor.recording")

YIELD_EVERY = 256


def write_events(records: list[Record]) -> None:
    """Write records as they come, every hit itemised (a one-off write, tests)."""
    tally = Tally()
    tally.fold(records)
    write_tally(tally)


def write_tally(tally: Tally, *, dropped: int = 0) -> None:
    """Write a tally in one transaction: functions, entries, call rows, hit counts,
    counters; and `dropped`, records this process lost before they reached a tally."""
    if not tally.records and not dropped:
        return
    with transaction.atomic():
        infos = tally.infos()
        versions = {info.schema_fingerprint: schema_version_for(info) for info in infos}
        _touch_functions(infos, versions)
        computed = [event for segment in tally.segments for event in segment.computed]
        inputs = {id(event): _input_of(event) for event in computed}
        earlier = EarlierEntries.load(
            keys=(event.key for event in computed if _needs_explaining(event)),
            inputs=(
                (_function_name(event.info), inputs[id(event)][1])
                for event in computed
                if _needs_explaining(event)
            ),
        )
        rollups = Rollups()
        rows: list[CallRow] = []
        for segment in tally.segments:
            for event in segment.computed:
                version = versions[event.info.schema_fingerprint]
                try:
                    row = _row_for_computed(event, version, inputs[id(event)], earlier)
                except DatabaseError as exc:
                    # Names the record (never its values: they may hold secrets).
                    exc.add_note(
                        f"while writing the {event.outcome} of {event.info.name}, key {event.key}"
                    )
                    raise
                rows.append(row)
                rollups.add(
                    _hour(event.started),
                    event.info.name,
                    version.pk,
                    row[9],  # the model as stored
                    str(event.outcome),
                    _computed_counts(event),
                )
            rows.extend(_write_hits(segment.hits, versions, rollups))
        for counted in tally.counted_only.values():
            rollups.add(
                counted.hour,
                counted.info.name,
                versions[counted.info.schema_fingerprint].pk,
                counted.model,
                counted.outcome,
                counts_of(
                    counted.latencies,
                    itemised=0,
                    tokens=(
                        counted.prompt_tokens,
                        counted.completion_tokens,
                        counted.cached_prompt_tokens,
                    ),
                    writes=(counted.cache_write_tokens, counted.cache_write_1h_tokens),
                ),
            )
        insert_calls(rows)
        rollups.write()
        lost = dropped + tally.dropped
        if lost:
            DroppedRecords.objects.create(count=lost, process=_PROCESS, reason=_DROP_REASON)


_PROCESS = f"{socket.gethostname()}:{os.getpid()}"
_DROP_REASON = "the call record buffer was full (the database away, or slower than the calls)"


def _hour(started: float) -> int:
    return int(wall_time(started) // HOUR)


def _computed_counts(event: CallEvent) -> Counts:
    latencies = Latencies()
    latencies.add(event.latency)
    usage = event.tokens
    return counts_of(
        latencies,
        itemised=1,
        tokens=(usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens),
        writes=(usage.cache_write_tokens, usage.cache_write_1h_tokens),
    )


def _needs_explaining(event: CallEvent) -> bool:
    return event.outcome == Outcome.MISS and not event.miss_reason


def _function_name(info: FunctionInfo) -> str:
    """The name as stored: clipped to the column, like every other value."""
    return field_cleaner(Entry, "function")(info.name)  # type: ignore[no-any-return]


def _input_of(event: CallEvent) -> tuple[Any, str]:
    """(arguments, input fingerprint) of a computed call, arguments redacted."""
    info = event.info
    # Everything below stores or compares the redacted arguments; the key was
    # hashed from the real ones.
    arguments = redact_value(info.arguments_of(event.arguments_json))
    fingerprint = input_fingerprint(
        namespace=info.namespace,
        function=info.name,
        arguments=arguments,
        model_argument=info.model_argument,
    )
    return arguments, fingerprint


def schema_version_for(info: FunctionInfo) -> SchemaVersion:
    """The numbered version of this schema fingerprint, created on first sight."""
    identity = clean_fields(
        SchemaVersion, {"name": info.schema_name, "fingerprint": info.schema_fingerprint}
    )
    existing = SchemaVersion.objects.filter(**identity).first()
    if existing is not None:
        return existing
    for _ in range(5):
        try:
            with transaction.atomic():
                top = SchemaVersion.objects.filter(name=identity["name"]).aggregate(
                    top=Max("number")
                )["top"]
                return SchemaVersion.objects.create(
                    **identity,
                    **clean_fields(
                        SchemaVersion,
                        {
                            "number": (top or 0) + 1,
                            "json_schema": info.json_schema,
                            "field_order": list(info.json_schema.get("properties", {})),
                        },
                    ),
                )
        except IntegrityError:
            # Another process numbered it (or took the number) first; look again.
            existing = SchemaVersion.objects.filter(**identity).first()
            if existing is not None:
                return existing
    raise IntegrityError(f"could not number a new version of {info.schema_name}")


def _touch_functions(infos: dict[FunctionInfo, float], versions: dict[str, SchemaVersion]) -> None:
    # Several FunctionInfo objects can share a name (a module reloaded after an
    # edit); the most recently called one is the function's current state.
    latest: dict[str, tuple[FunctionInfo, float]] = {}
    for info, started in infos.items():
        if info.name not in latest or started >= latest[info.name][1]:
            latest[info.name] = (info, started)
    for name, (info, started) in latest.items():
        CachedFunction.objects.update_or_create(
            name=field_cleaner(CachedFunction, "name")(name),
            defaults=clean_fields(
                CachedFunction,
                {
                    "code_fingerprint": info.code_fingerprint,
                    "version": info.version,
                    "schema_version": versions[info.schema_fingerprint],
                    # Defence in depth: a backend label is meant to hide its password already.
                    "backend": redact(info.backend_label or _default_backend_label()),
                    "last_seen_at": _datetime(started),
                },
            ),
        )


def _default_backend_label() -> str:
    try:
        return default_backend().label
    except Exception:
        return ""


def _datetime(started: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall_time(started), tz=dt.UTC)


def _row_for_computed(
    event: CallEvent,
    version: SchemaVersion,
    prepared: tuple[Any, str],
    earlier: EarlierEntries,
) -> CallRow:
    """A miss, error, bypass or replay: the function really ran."""
    info = event.info
    arguments, fingerprint = prepared
    envelope = event.envelope
    error = redact(event.error or "")
    reason, detail = event.miss_reason or "", error if event.miss_reason else ""
    model = model_of(arguments, info.model_argument, envelope.llm_model if envelope else "")
    if _needs_explaining(event):
        reason, detail = explain_miss(
            MissContext(
                key=event.key,
                function=_function_name(info),
                namespace=info.namespace,
                input_fingerprint=fingerprint,
                schema_version=version,
                code_fingerprint=info.code_fingerprint,
                version=info.version,
                model=model,
                model_argument=info.model_argument,
                at=_datetime(event.started),
            ),
            earlier,
        )
    entry_id: int | None = None
    document_sha = event.labels.get("document", "")
    if event.outcome == Outcome.MISS and event.stored and envelope is not None:
        entry_id = _store_entry(
            event, version, arguments, fingerprint, envelope, earlier, document_sha
        )
    elif event.outcome == Outcome.REPLAY:
        entry_id = (
            Entry.objects.filter(key=event.key, status=Entry.Status.LIVE)
            .values_list("pk", flat=True)
            .first()
        )
    usage = event.tokens
    return clean_call_row(
        (
            entry_id,
            event.key,
            info.name,
            version.pk,
            event.outcome,
            reason,
            detail,
            event.latency * 1000,
            envelope.llm_provider if envelope else "",
            envelope.llm_model if envelope and envelope.llm_model else model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_prompt_tokens,
            usage.cache_write_tokens,
            usage.cache_write_1h_tokens,
            document_sha,
            input_preview(arguments),
            error,
            timestamp_adapter()(wall_time(event.started)),
        )
    )


def _store_entry(
    event: CallEvent,
    version: SchemaVersion,
    arguments: Any,
    fingerprint: str,
    envelope: Envelope[Any],
    earlier: EarlierEntries,
    document_sha: str,
) -> int:
    """The key's live row for this stored value; its id.

    A live row stored before this call began held a value that was gone when
    the call looked (expired, corrupt, evicted): it is replaced. One stored
    while the call was in flight is the same entry computed at the same time
    elsewhere (another process; single-flight is per process): the two converge
    on one row instead of one "replacing" the other.
    """
    started = _datetime(event.started)
    replace_live_entry(event.key, stored_before=started, at=started)
    fields = clean_fields(
        Entry,
        {
            **_entry_fields(
                event.info,
                event.key,
                version,
                envelope,
                event.ttl,
                # A miss is recorded right after its store: the value reached the
                # backend by then. Dating the row from that moment (not from when
                # the value was built) tells a call that began before the value
                # could be read (a concurrent miss elsewhere: the same entry) from
                # one that began after (the value was gone: it is replaced).
                stored_at=wall_time(event.started + event.latency),
            ),
            "arguments": arguments,
            "input_fingerprint": fingerprint,
            "input_preview": input_preview(arguments),
            "document_sha": document_sha,
        },
    )
    entry_id = upsert_live_entry(fields)
    earlier.add(Entry(pk=entry_id, **fields))
    return entry_id


def store_entry(
    *,
    info: FunctionInfo,
    key: str,
    envelope: Envelope[Any],
    arguments: Any,
    ttl: float | None,
    document_sha: str = "",
) -> Entry:
    """The row for a value stored outside a call (a replay the user accepted)."""
    version = schema_version_for(info)
    arguments = redact_value(arguments)
    now = dt.datetime.now(tz=dt.UTC)
    replace_live_entry(key, stored_before=now, at=now)
    fields = clean_fields(
        Entry,
        {
            **_entry_fields(info, key, version, envelope, ttl),
            "arguments": arguments,
            "input_fingerprint": input_fingerprint(
                namespace=info.namespace,
                function=info.name,
                arguments=arguments,
                model_argument=info.model_argument,
            ),
            "input_preview": input_preview(arguments),
            "document_sha": document_sha,
        },
    )
    return Entry.objects.get(pk=upsert_live_entry(fields))


def _entry_fields(
    info: FunctionInfo,
    key: str,
    version: SchemaVersion,
    envelope: Envelope[Any],
    ttl: float | None,
    *,
    stored_at: float | None = None,
) -> dict[str, Any]:
    created_at = dt.datetime.fromtimestamp(
        stored_at if stored_at is not None else envelope.created_at, tz=dt.UTC
    )
    return {
        "key": key,
        "namespace": info.namespace,
        "function": info.name,  # clipped with the rest by clean_fields
        "schema_version": version,
        "code_fingerprint": info.code_fingerprint,
        "version": info.version,
        "output": redact_value(envelope.output.model_dump(mode="json")),
        "llm_provider": envelope.llm_provider,
        "llm_model": envelope.llm_model,
        "prompt_tokens": envelope.usage.prompt_tokens,
        "completion_tokens": envelope.usage.completion_tokens,
        "cached_prompt_tokens": envelope.usage.cached_prompt_tokens,
        "cache_write_tokens": envelope.usage.cache_write_tokens,
        "cache_write_1h_tokens": envelope.usage.cache_write_1h_tokens,
        "latency_ms": envelope.latency_ms,
        "created_at": created_at,
        "expires_at": created_at + dt.timedelta(seconds=ttl) if ttl else None,
    }


def _write_hits(
    hits: dict[tuple[FunctionInfo, str, int], KeyHits],
    versions: dict[str, SchemaVersion],
    rollups: Rollups,
) -> list[CallRow]:
    """Add the hits to their entries' counts and to the counters; their itemised rows."""
    if not hits:
        return []
    infos = {key_hits.key: key_hits.info for key_hits in hits.values()}
    entries = _entries_by_key(infos, versions)
    rows: list[CallRow] = []
    db_time = timestamp_adapter()
    counts: dict[int, tuple[int, float]] = {}
    for key_hits in hits.values():
        info, key, latencies = key_hits.info, key_hits.key, key_hits.latencies
        entry = entries.get(key)
        if entry is not None:
            count, last = counts.get(entry.pk, (0, 0.0))
            counts[entry.pk] = (count + latencies.count, max(last, key_hits.last))
        version_id = entry.schema_version_id if entry else versions[info.schema_fingerprint].pk
        rollups.add(
            key_hits.hour,
            info.name,
            version_id,
            entry.llm_model if entry else "",
            Outcome.HIT,
            counts_of(
                latencies,
                itemised=len(key_hits.itemised),
                without_entry=0 if entry else latencies.count,
                coalesced=key_hits.coalesced,
                # What the hits saved: what their entry's LLM call cost, each time.
                tokens=(
                    (
                        entry.prompt_tokens * latencies.count,
                        entry.completion_tokens * latencies.count,
                        entry.cached_prompt_tokens * latencies.count,
                    )
                    if entry
                    else (0, 0, 0)
                ),
                writes=(
                    (
                        entry.cache_write_tokens * latencies.count,
                        entry.cache_write_1h_tokens * latencies.count,
                    )
                    if entry
                    else (0, 0)
                ),
                original_latency_ms=entry.latency_ms * latencies.count if entry else 0.0,
            ),
        )
        if not key_hits.itemised:
            continue
        # Everything but the latency and time is the entry's: build (and clean) it once.
        template = clean_call_row(
            (
                entry.pk if entry else None,
                key,
                info.name,
                version_id,
                Outcome.HIT,
                "",
                "",
                0.0,
                entry.llm_provider if entry else "",
                entry.llm_model if entry else "",
                0,
                0,
                0,
                0,
                0,
                "",  # hits carry no labels: they sent nothing to the provider
                entry.input_preview if entry else "",
                "",
                None,
            )
        )
        # Everything between the latency (index 7) and the time (last).
        head, middle = template[:7], template[8:-1]
        for index, (started, latency) in enumerate(key_hits.itemised):
            rows.append((*head, latency * 1000, *middle, db_time(wall_time(started))))
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                # Hand the interpreter to the callers now and then: a caller back
                # from a Redis round trip must not wait a full switch interval.
                time.sleep(0)
    add_hits(
        [(count, db_time(wall_time(last)), entry_id) for entry_id, (count, last) in counts.items()]
    )
    return rows


def _entries_by_key(
    infos: dict[str, FunctionInfo], versions: dict[str, SchemaVersion]
) -> dict[str, Entry]:
    """Each key's live row if it has one, else its newest."""
    found: dict[str, Entry] = {}
    keys = list(infos)
    for start in range(0, len(keys), 500):
        rows = Entry.objects.filter(key__in=keys[start : start + 500]).only(
            "id",
            "key",
            "status",
            "schema_version_id",
            "llm_provider",
            "llm_model",
            "input_preview",
            "created_at",
            "prompt_tokens",
            "completion_tokens",
            "cached_prompt_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "latency_ms",
        )
        for entry in rows.order_by("key", "created_at", "id"):
            current = found.get(entry.key)
            # The live row if there is one, else the newest.
            if current is None or current.status != Entry.Status.LIVE:
                found[entry.key] = entry
    for key, info in infos.items():
        if key not in found:
            adopted = _adopt(info, key, versions)
            if adopted is not None:
                found[key] = adopted
    return found


def _adopt(info: FunctionInfo, key: str, versions: dict[str, SchemaVersion]) -> Entry | None:
    """An entry for a value this database never saw stored (a restored database,
    or a backend shared with another deployment): read it back from the backend.
    Its arguments are unknown: only the key was hashed from them."""
    cached = registry.find(info.name)
    if cached is None or info.response_model is None:
        return None
    try:
        raw = cached.backend().get(key)
        if raw is None:
            return None
        envelope = envelope_type(info.response_model).model_validate_json(raw)
    except Exception:
        logger.warning("could not read back %s for %s", key, info.name, exc_info=True)
        return None
    # The value was stored with the function's ttl (as CachedFunction.ttl() gives it).
    ttl = info.ttl if info.ttl is not None else current_defaults().ttl
    fields = clean_fields(
        Entry,
        {
            **_entry_fields(info, key, versions[info.schema_fingerprint], envelope, ttl),
            "arguments": None,
            "input_fingerprint": "",
            "input_preview": "(arguments not recorded: first seen on a hit)",
        },
    )
    # Another process may be storing the key's row right now: keep whichever
    # is there (its miss, written later, merges its arguments into it).
    return Entry.objects.get(pk=upsert_live_entry(fields, merge=False))
