"""Why a call missed, found by comparing with what was cached before.

The library knows only of corruption and backend errors; everything else is
read off earlier entries: of the same key (invalidated, expired, evicted) and
of the same function and input (schema, model, code or version changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from extractor.caching.events import MissReason
from extractor.models import Entry, SchemaVersion
from extractor.recording.previews import model_of


@dataclass(frozen=True)
class MissContext:
    key: str
    function: str
    namespace: str
    input_fingerprint: str
    schema_version: SchemaVersion
    code_fingerprint: str
    version: str
    model: str
    model_argument: str | None
    at: datetime


def explain_miss(context: MissContext) -> tuple[str, str]:
    """Return (reason, detail) for a miss the library could not explain."""
    same_key = Entry.objects.filter(key=context.key).order_by("-created_at", "-id").first()
    if same_key is not None:
        return _why_key_went_missing(same_key, context.at)
    earlier = (
        Entry.objects.filter(function=context.function, input_fingerprint=context.input_fingerprint)
        .select_related("schema_version")
        .order_by("-created_at", "-id")
        .first()
    )
    if earlier is None:
        return MissReason.NEW_INPUT, ""
    if earlier.schema_version_id != context.schema_version.pk:
        return (
            MissReason.SCHEMA_CHANGED,
            f"{earlier.schema_version.label} → {context.schema_version.label}",
        )
    earlier_model = model_of(earlier.arguments, context.model_argument, earlier.llm_model)
    if context.model and earlier_model and context.model != earlier_model:
        return MissReason.MODEL_CHANGED, f"{earlier_model} → {context.model}"
    if earlier.code_fingerprint != context.code_fingerprint:
        return (
            MissReason.CODE_CHANGED,
            f"{earlier.code_fingerprint[:8]} → {context.code_fingerprint[:8]}",
        )
    if earlier.version != context.version:
        return MissReason.VERSION_CHANGED, f"{earlier.version or '—'} → {context.version or '—'}"
    if earlier.namespace == context.namespace and earlier.key != context.key:
        # Nothing stored differs, yet the key does: the part of the key read at
        # call time (environment variables, settings, attributes of self).
        return (
            MissReason.STATE_CHANGED,
            "an environment variable, setting or instance attribute the function reads",
        )
    return MissReason.NEW_INPUT, ""


def _why_key_went_missing(entry: Entry, at: datetime) -> tuple[str, str]:
    if entry.status in (Entry.Status.INVALIDATED, Entry.Status.INVALIDATING):
        detail = str(entry.invalidation) if entry.invalidation_id else ""
        return MissReason.INVALIDATED, detail
    if entry.expires_at is not None and entry.expires_at <= at:
        return MissReason.EXPIRED, f"expired at {entry.expires_at:%Y-%m-%d %H:%M:%S}"
    return MissReason.EVICTED, "the backend no longer held the value"
