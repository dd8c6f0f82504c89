"""Turns a batch of call events into rows: schema versions, entries, calls.

Misses are few (each one paid for an LLM call) and get per-event work: the
miss explanation and a new entry row. Hits are many and are written in bulk:
one INSERT for their call rows and one UPDATE per key for hit counts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import F, Max

from extractor.caching.defaults import current as current_defaults
from extractor.caching.envelope import Envelope
from extractor.caching.events import CallEvent, FunctionInfo, Outcome, wall_time
from extractor.models import Call, CachedFunction, Entry, SchemaVersion
from extractor.recording.previews import input_fingerprint, input_preview, model_of
from extractor.recording.reasons import MissContext, explain_miss

_UTC = dt.UTC


def write_events(events: list[CallEvent]) -> None:
    if not events:
        return
    with transaction.atomic():
        versions = {
            info.schema_fingerprint: schema_version_for(info)
            for info in _distinct_infos(events)
        }
        _touch_functions(events, versions)
        calls: list[Call] = []
        hits: list[CallEvent] = []
        for event in events:
            if event.outcome == Outcome.HIT:
                hits.append(event)
            else:
                calls.append(_call_for_computed(event, versions[event.info.schema_fingerprint]))
        calls.extend(_calls_for_hits(hits, versions))
        Call.objects.bulk_create(calls, batch_size=500)


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
                )
        except IntegrityError:
            # Another process numbered it (or took the number) first; look again.
            existing = SchemaVersion.objects.filter(
                name=info.schema_name, fingerprint=info.schema_fingerprint
            ).first()
            if existing is not None:
                return existing
    raise IntegrityError(f"could not number a new version of {info.schema_name}")


def _distinct_infos(events: Iterable[CallEvent]) -> list[FunctionInfo]:
    return list({id(event.info): event.info for event in events}.values())


def _touch_functions(events: list[CallEvent], versions: dict[str, SchemaVersion]) -> None:
    latest: dict[str, CallEvent] = {}
    for event in events:
        latest[event.info.name] = event
    for name, event in latest.items():
        info = event.info
        CachedFunction.objects.update_or_create(
            name=name,
            defaults={
                "code_fingerprint": info.code_fingerprint,
                "version": info.version,
                "schema_version": versions[info.schema_fingerprint],
                "backend": info.backend_label or _default_backend_label(),
                "last_seen_at": _at(event),
            },
        )


def _default_backend_label() -> str:
    from extractor.caching.defaults import default_backend

    try:
        return default_backend().label
    except Exception:
        return current_defaults().url


def _at(event: CallEvent) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall_time(event.started), tz=_UTC)


def _call_for_computed(event: CallEvent, version: SchemaVersion) -> Call:
    """A miss, error, bypass or replay: the function really ran."""
    arguments = orjson.loads(event.arguments_json)
    info = event.info
    envelope = event.envelope
    fingerprint = input_fingerprint(
        namespace=info.namespace,
        function=info.name,
        arguments=arguments,
        model_argument=info.model_argument,
    )
    reason, detail = event.miss_reason or "", event.error if event.miss_reason else ""
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
                model=model_of(arguments, info.model_argument, _model(envelope)),
                model_argument=info.model_argument,
                at=_at(event),
            )
        )
    entry = None
    if event.outcome == Outcome.MISS and event.stored and envelope is not None:
        entry = _store_entry(event, version, arguments, fingerprint, envelope)
    elif event.outcome == Outcome.REPLAY:
        entry = Entry.objects.filter(key=event.key, status=Entry.Status.LIVE).first()
    usage = envelope.usage if envelope is not None else None
    return Call(
        entry=entry,
        key=event.key,
        function=info.name,
        schema_version=version,
        outcome=event.outcome,
        miss_reason=reason,
        reason_detail=(detail or "")[:255],
        latency_ms=event.latency * 1000,
        llm_provider=envelope.llm_provider if envelope else "",
        llm_model=_model(envelope) or model_of(arguments, info.model_argument, ""),
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cached_prompt_tokens=usage.cached_prompt_tokens if usage else 0,
        input_preview=input_preview(arguments),
        error=event.error or "",
        created_at=_at(event),
    )


def _model(envelope: Envelope[Any] | None) -> str:
    return envelope.llm_model if envelope is not None else ""


def _store_entry(
    event: CallEvent,
    version: SchemaVersion,
    arguments: Any,
    fingerprint: str,
    envelope: Envelope[Any],
) -> Entry:
    created_at = _at(event)
    Entry.objects.filter(key=event.key, status=Entry.Status.LIVE).update(
        status=Entry.Status.REPLACED, status_changed_at=created_at
    )
    return Entry.objects.create(**_entry_fields(event, version, arguments, fingerprint, envelope))


def _entry_fields(
    event: CallEvent,
    version: SchemaVersion,
    arguments: Any,
    fingerprint: str,
    envelope: Envelope[Any],
) -> dict[str, Any]:
    info = event.info
    created_at = dt.datetime.fromtimestamp(envelope.created_at, tz=_UTC)
    ttl = event.ttl
    return {
        "key": event.key,
        "namespace": info.namespace,
        "function": info.name,
        "schema_version": version,
        "code_fingerprint": info.code_fingerprint,
        "version": info.version,
        "input_fingerprint": fingerprint,
        "arguments": arguments,
        "input_preview": input_preview(arguments),
        "output": envelope.output.model_dump(mode="json"),
        "llm_provider": envelope.llm_provider,
        "llm_model": envelope.llm_model,
        "prompt_tokens": envelope.usage.prompt_tokens,
        "completion_tokens": envelope.usage.completion_tokens,
        "cached_prompt_tokens": envelope.usage.cached_prompt_tokens,
        "latency_ms": envelope.latency_ms,
        "created_at": created_at,
        "expires_at": created_at + dt.timedelta(seconds=ttl) if ttl else None,
    }


def _calls_for_hits(hits: list[CallEvent], versions: dict[str, SchemaVersion]) -> list[Call]:
    if not hits:
        return []
    by_key: dict[str, list[CallEvent]] = defaultdict(list)
    for event in hits:
        by_key[event.key].append(event)
    entries = _entries_by_key(by_key, versions)
    calls: list[Call] = []
    for key, events in by_key.items():
        entry = entries[key]
        last_hit = max(_at(event) for event in events)
        Entry.objects.filter(pk=entry.pk).update(
            hit_count=F("hit_count") + len(events), last_hit_at=last_hit
        )
        for event in events:
            calls.append(
                Call(
                    entry_id=entry.pk,
                    key=key,
                    function=event.info.name,
                    schema_version_id=entry.schema_version_id,
                    outcome=Outcome.HIT,
                    latency_ms=event.latency * 1000,
                    llm_provider=entry.llm_provider,
                    llm_model=entry.llm_model,
                    input_preview=entry.input_preview,
                    created_at=_at(event),
                )
            )
    return calls


def _entries_by_key(
    by_key: dict[str, list[CallEvent]], versions: dict[str, SchemaVersion]
) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    keys = list(by_key)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = Entry.objects.filter(key__in=chunk).order_by("key", "-created_at", "-id")
        for entry in rows.only(
            "id", "key", "status", "schema_version_id", "llm_provider", "llm_model",
            "input_preview",
        ):
            current = found.get(entry.key)
            if current is None or (
                entry.status == Entry.Status.LIVE and current.status != Entry.Status.LIVE
            ):
                found[entry.key] = entry
    for key, events in by_key.items():
        if key not in found:
            found[key] = _adopt(events[0], versions)
    return found


def _adopt(event: CallEvent, versions: dict[str, SchemaVersion]) -> Entry:
    """A hit on a value this database never saw stored (restored or shared backend)."""
    assert event.envelope is not None
    arguments = orjson.loads(event.arguments_json)
    info = event.info
    fingerprint = input_fingerprint(
        namespace=info.namespace,
        function=info.name,
        arguments=arguments,
        model_argument=info.model_argument,
    )
    return Entry.objects.create(
        **_entry_fields(
            event, versions[info.schema_fingerprint], arguments, fingerprint, event.envelope
        )
    )
