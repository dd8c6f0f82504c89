"""Turns a batch of call records into rows: schema versions, entries, calls.

Misses are few (each one paid for an LLM call) and get per-event work: the
miss explanation and a new entry row. Hits are many and are written in bulk:
multi-row INSERTs for their call rows and one executemany for hit counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from extractor.caching import registry
from extractor.caching.defaults import current as current_defaults
from extractor.caching.defaults import default_backend
from extractor.caching.envelope import Envelope, Usage, envelope_type
from extractor.caching.events import CallEvent, FunctionInfo, HitRecord, Outcome, Record, wall_time
from extractor.models import CachedFunction, Entry, SchemaVersion
from extractor.recording.inserts import CallRow, add_hits, insert_calls, timestamp_adapter
from extractor.recording.previews import input_fingerprint, input_preview, model_of
from extractor.recording.reasons import MissContext, explain_miss
from extractor.redaction import redact, redact_value

logger = logging.getLogger("extractor.recording")

YIELD_EVERY = 256


def write_events(records: list[Record]) -> None:
    if not records:
        return
    hits: list[HitRecord] = []
    computed: list[CallEvent] = []
    for record in records:
        if type(record) is tuple:
            hits.append(record)
        else:
            computed.append(record)  # type: ignore[arg-type]
    with transaction.atomic():
        infos = _latest_sighting(hits, computed)
        versions = {info.schema_fingerprint: schema_version_for(info) for info in infos}
        _touch_functions(infos, versions)
        rows: list[CallRow] = []
        # Hits are written in bulk, but a hit recorded before a miss that stores a
        # new value under its key was served by the old value: count it on the old
        # row, before the miss marks that row replaced.
        pending: list[HitRecord] = []
        pending_keys: set[str] = set()
        for record in records:
            if type(record) is tuple:
                pending.append(record)
                pending_keys.add(record[1])
                continue
            event: CallEvent = record  # type: ignore[assignment]
            if event.key in pending_keys:
                rows.extend(_rows_for_hits(pending, versions))
                pending, pending_keys = [], set()
            rows.append(_row_for_computed(event, versions[event.info.schema_fingerprint]))
        rows.extend(_rows_for_hits(pending, versions))
        insert_calls(rows)


def schema_version_for(info: FunctionInfo) -> SchemaVersion:
    """The numbered version of this schema fingerprint, created on first sight."""
    existing = SchemaVersion.objects.filter(
        name=info.schema_name, fingerprint=info.schema_fingerprint
    ).first()
    if existing is not None:
        return existing
    for _ in range(5):
        try:
            with transaction.atomic():
                top = SchemaVersion.objects.filter(name=info.schema_name).aggregate(
                    top=Max("number")
                )["top"]
                return SchemaVersion.objects.create(
                    name=info.schema_name,
                    fingerprint=info.schema_fingerprint,
                    number=(top or 0) + 1,
                    json_schema=info.json_schema,
                    field_order=list(info.json_schema.get("properties", {})),
                )
        except IntegrityError:
            # Another process numbered it (or took the number) first; look again.
            existing = SchemaVersion.objects.filter(
                name=info.schema_name, fingerprint=info.schema_fingerprint
            ).first()
            if existing is not None:
                return existing
    raise IntegrityError(f"could not number a new version of {info.schema_name}")


def _latest_sighting(hits: list[HitRecord], computed: list[CallEvent]) -> dict[FunctionInfo, float]:
    """Each function seen in the batch, with when it was last called."""
    seen: dict[FunctionInfo, float] = {}
    for info, _key, started, _latency in hits:
        seen[info] = max(started, seen.get(info, started))
    for event in computed:
        seen[event.info] = max(event.started, seen.get(event.info, event.started))
    return seen


def _touch_functions(infos: dict[FunctionInfo, float], versions: dict[str, SchemaVersion]) -> None:
    # Several FunctionInfo objects can share a name (a module reloaded after an
    # edit); the most recently called one is the function's current state.
    latest: dict[str, tuple[FunctionInfo, float]] = {}
    for info, started in infos.items():
        if info.name not in latest or started >= latest[info.name][1]:
            latest[info.name] = (info, started)
    for name, (info, started) in latest.items():
        CachedFunction.objects.update_or_create(
            name=name,
            defaults={
                "code_fingerprint": info.code_fingerprint,
                "version": info.version,
                "schema_version": versions[info.schema_fingerprint],
                # Defence in depth: a backend label is meant to hide its password already.
                "backend": redact(info.backend_label or _default_backend_label()),
                "last_seen_at": _datetime(started),
            },
        )


def _default_backend_label() -> str:
    try:
        return default_backend().label
    except Exception:
        return ""


def _datetime(started: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall_time(started), tz=dt.UTC)


def _row_for_computed(event: CallEvent, version: SchemaVersion) -> CallRow:
    """A miss, error, bypass or replay: the function really ran."""
    info = event.info
    # Everything below stores or compares the redacted arguments; the key was
    # hashed from the real ones.
    arguments = redact_value(info.arguments_of(event.arguments_json))
    envelope = event.envelope
    fingerprint = input_fingerprint(
        namespace=info.namespace,
        function=info.name,
        arguments=arguments,
        model_argument=info.model_argument,
    )
    error = redact(event.error or "")
    reason, detail = event.miss_reason or "", error if event.miss_reason else ""
    model = model_of(arguments, info.model_argument, envelope.llm_model if envelope else "")
    if event.outcome == Outcome.MISS and not event.miss_reason:
        reason, detail = explain_miss(
            MissContext(
                key=event.key,
                function=info.name,
                namespace=info.namespace,
                input_fingerprint=fingerprint,
                schema_version=version,
                code_fingerprint=info.code_fingerprint,
                version=info.version,
                model=model,
                model_argument=info.model_argument,
                at=_datetime(event.started),
            )
        )
    entry = None
    if event.outcome == Outcome.MISS and event.stored and envelope is not None:
        entry = _store_entry(event, version, arguments, fingerprint, envelope)
    elif event.outcome == Outcome.REPLAY:
        entry = Entry.objects.filter(key=event.key, status=Entry.Status.LIVE).first()
    usage = envelope.usage if envelope is not None else Usage()
    return (
        entry.pk if entry else None,
        event.key,
        info.name,
        version.pk,
        event.outcome,
        reason,
        detail[:255],
        event.latency * 1000,
        envelope.llm_provider if envelope else "",
        envelope.llm_model if envelope and envelope.llm_model else model,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_prompt_tokens,
        input_preview(arguments),
        error,
        timestamp_adapter()(wall_time(event.started)),
    )


def _store_entry(
    event: CallEvent,
    version: SchemaVersion,
    arguments: Any,
    fingerprint: str,
    envelope: Envelope[Any],
) -> Entry:
    Entry.objects.filter(key=event.key, status=Entry.Status.LIVE).update(
        status=Entry.Status.REPLACED, status_changed_at=_datetime(event.started)
    )
    return Entry.objects.create(
        **_entry_fields(event.info, event.key, version, envelope, event.ttl),
        arguments=arguments,
        input_fingerprint=fingerprint,
        input_preview=input_preview(arguments),
    )


def store_entry(
    *, info: FunctionInfo, key: str, envelope: Envelope[Any], arguments: Any, ttl: float | None
) -> Entry:
    """The row for a value stored outside a call (a replay the user accepted)."""
    version = schema_version_for(info)
    arguments = redact_value(arguments)
    Entry.objects.filter(key=key, status=Entry.Status.LIVE).update(
        status=Entry.Status.REPLACED, status_changed_at=dt.datetime.now(tz=dt.UTC)
    )
    return Entry.objects.create(
        **_entry_fields(info, key, version, envelope, ttl),
        arguments=arguments,
        input_fingerprint=input_fingerprint(
            namespace=info.namespace,
            function=info.name,
            arguments=arguments,
            model_argument=info.model_argument,
        ),
        input_preview=input_preview(arguments),
    )


def _entry_fields(
    info: FunctionInfo,
    key: str,
    version: SchemaVersion,
    envelope: Envelope[Any],
    ttl: float | None,
) -> dict[str, Any]:
    created_at = dt.datetime.fromtimestamp(envelope.created_at, tz=dt.UTC)
    return {
        "key": key,
        "namespace": info.namespace,
        "function": info.name,
        "schema_version": version,
        "code_fingerprint": info.code_fingerprint,
        "version": info.version,
        "output": redact_value(envelope.output.model_dump(mode="json")),
        "llm_provider": envelope.llm_provider,
        "llm_model": envelope.llm_model,
        "prompt_tokens": envelope.usage.prompt_tokens,
        "completion_tokens": envelope.usage.completion_tokens,
        "cached_prompt_tokens": envelope.usage.cached_prompt_tokens,
        "latency_ms": envelope.latency_ms,
        "created_at": created_at,
        "expires_at": created_at + dt.timedelta(seconds=ttl) if ttl else None,
    }


def _rows_for_hits(hits: list[HitRecord], versions: dict[str, SchemaVersion]) -> list[CallRow]:
    if not hits:
        return []
    by_key: dict[str, list[HitRecord]] = defaultdict(list)
    for hit in hits:
        by_key[hit[1]].append(hit)
    entries = _entries_by_key(by_key, versions)
    rows: list[CallRow] = []
    db_time = timestamp_adapter()
    counts: list[tuple[int, Any, int]] = []
    for key, key_hits in by_key.items():
        entry = entries.get(key)
        last = max(started for _info, _key, started, _latency in key_hits)
        if entry is not None:
            counts.append((len(key_hits), db_time(wall_time(last)), entry.pk))
        # Everything but the latency and time is the entry's: build that part once.
        info = key_hits[0][0]
        head = (
            entry.pk if entry else None,
            key,
            info.name,
            entry.schema_version_id if entry else versions[info.schema_fingerprint].pk,
            Outcome.HIT,
            "",
            "",
        )
        middle = (
            entry.llm_provider if entry else "",
            entry.llm_model if entry else "",
            0,
            0,
            0,
            entry.input_preview if entry else "",
            "",
        )
        for index, (_info, _key, started, latency) in enumerate(key_hits):
            rows.append((*head, latency * 1000, *middle, db_time(wall_time(started))))
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                # Hand the interpreter to the callers now and then: a caller back
                # from a Redis round trip must not wait a full switch interval.
                time.sleep(0)
    add_hits(counts)
    return rows


def _entries_by_key(
    by_key: dict[str, list[HitRecord]], versions: dict[str, SchemaVersion]
) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    keys = list(by_key)
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
        )
        for entry in rows.order_by("key", "created_at", "id"):
            current = found.get(entry.key)
            # The live row if there is one, else the newest.
            if current is None or current.status != Entry.Status.LIVE:
                found[entry.key] = entry
    for key, key_hits in by_key.items():
        if key not in found:
            adopted = _adopt(key_hits[0][0], key, versions)
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
    return Entry.objects.create(
        **_entry_fields(info, key, versions[info.schema_fingerprint], envelope, ttl),
        arguments=None,
        input_fingerprint="",
        input_preview="(arguments not recorded: first seen on a hit)",
    )
