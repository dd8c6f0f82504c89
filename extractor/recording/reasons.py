"""Why a call missed, found by comparing with what was cached before.

The library knows only of corruption and backend errors; everything else is
read off earlier entries: of the same key (invalidated, expired, evicted) and
of the same function and input (schema, model, code or version changed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from extractor.caching.events import MissReason
from extractor.models import Entry, SchemaVersion
from extractor.recording.previews import model_of
from extractor.selectors.display_names import DisplayNames, unique_names


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


_LOOKUP_CHUNK = 500


class EarlierEntries:
    """The entries a batch's misses are compared with: read in two queries for the
    whole batch (by key, by input), then kept current as the batch stores more.

    A miss is compared only with entries stored before the call began: one
    stored while it was in flight (the same key computed at the same time by
    another process) was not there to be missed, so it cannot explain the miss.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, list[Entry]] = defaultdict(list)
        self._by_input: dict[tuple[str, str], list[Entry]] = defaultdict(list)

    @classmethod
    def load(cls, *, keys: Iterable[str], inputs: Iterable[tuple[str, str]]) -> EarlierEntries:
        found = cls()
        related = Entry.objects.select_related("schema_version", "invalidation").defer("output")
        key_list = sorted(set(keys))
        for start in range(0, len(key_list), _LOOKUP_CHUNK):
            for entry in related.filter(key__in=key_list[start : start + _LOOKUP_CHUNK]):
                found._by_key[entry.key].append(entry)
        wanted = set(inputs)
        fingerprints = sorted({fingerprint for _function, fingerprint in wanted})
        for start in range(0, len(fingerprints), _LOOKUP_CHUNK):
            chunk = fingerprints[start : start + _LOOKUP_CHUNK]
            for entry in related.filter(input_fingerprint__in=chunk):
                if (entry.function, entry.input_fingerprint) in wanted:
                    found._by_input[entry.function, entry.input_fingerprint].append(entry)
        return found

    def add(self, entry: Entry) -> None:
        self._by_key[entry.key].append(entry)
        if entry.input_fingerprint:
            self._by_input[entry.function, entry.input_fingerprint].append(entry)

    def for_key(self, key: str, before: datetime) -> Entry | None:
        return _latest(self._by_key.get(key, ()), before)

    def for_input(self, function: str, fingerprint: str, before: datetime) -> Entry | None:
        return _latest(self._by_input.get((function, fingerprint), ()), before)


def _latest(entries: Iterable[Entry], before: datetime) -> Entry | None:
    earlier = [entry for entry in entries if entry.created_at < before]
    return max(earlier, key=lambda entry: (entry.created_at, entry.pk or 0), default=None)


def explain_miss(context: MissContext, earlier_entries: EarlierEntries) -> tuple[str, str]:
    """Return (reason, detail) for a miss the library could not explain."""
    same_key = earlier_entries.for_key(context.key, context.at)
    if same_key is not None:
        return _why_key_went_missing(same_key, context.at)
    earlier = earlier_entries.for_input(context.function, context.input_fingerprint, context.at)
    if earlier is None:
        return MissReason.NEW_INPUT, ""
    if earlier.schema_version_id != context.schema_version.pk:
        return MissReason.SCHEMA_CHANGED, _schema_change(
            earlier.schema_version, context.schema_version
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


def _schema_change(old: SchemaVersion, new: SchemaVersion) -> str:
    """ "v1 → v2", or with the schemas' names when the response model itself changed
    ("UserDetail v1 (extractor.schemas) → UserDetail v1 (myapp.schemas)")."""
    if old.name == new.name:
        return f"{old.label} → {new.label}"
    names = DisplayNames(functions={}, schemas=unique_names([old.name, new.name]))
    return f"{names.schema_version(old)} → {names.schema_version(new)}"


def _why_key_went_missing(entry: Entry, at: datetime) -> tuple[str, str]:
    if entry.status in (Entry.Status.INVALIDATED, Entry.Status.INVALIDATING):
        detail = str(entry.invalidation) if entry.invalidation_id else ""
        return MissReason.INVALIDATED, detail
    if entry.expires_at is not None and entry.expires_at <= at:
        return MissReason.EXPIRED, f"expired at {entry.expires_at:%Y-%m-%d %H:%M:%S}"
    return MissReason.EVICTED, "the backend no longer held the value"
