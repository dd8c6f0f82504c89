"""Export and import of cached entries as JSON Lines: a backup, or a move from one
backend to another (disk:// to Redis) that keeps every value warm.

The file, one JSON object per line:

    {"cachesite": "entries", "format": 1, "exported_at": "..."}
    {"schema_version": {"name": ..., "fingerprint": ..., "number": ..., ...}}
    {"function": {"name": ..., "code_fingerprint": ..., "schema": [name, fingerprint]}}
    {"entry": {"key": ..., "schema": [name, fingerprint], ...}, "value": "<envelope>"}

A schema version or function line comes once, before the first entry that needs
it, so both sides stream: neither holds more than a chunk of entries. The value
is the stored envelope, byte for byte, as a JSON string (base64 under
"value_base64" if it were ever not UTF-8): re-encoding it as a JSON object
would reorder or reformat what the hit path reads by position.

Only live, unexpired entries whose value the backend still holds are exported;
what is written is what is stored (inputs were redacted before they were).
An import writes each value into the target backend first and its row after, so
a failure in between leaves a value without a row (found by reconcile), never a
live row without a value. An entry whose key is already live in the target
database is left as it is there.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from extractor import recording
from extractor.caching.backends import CacheBackend
from extractor.caching.errors import CorruptValue
from extractor.models import CachedFunction, Entry, SchemaVersion
from extractor.services.invalidation import BackendUnknown, backend_for

CHUNK = 500
FORMAT = 1
HEADER_KIND = "entries"

# (done so far, total or None while unknown); for an import, bytes of the file read.
Progress = Callable[[int, int | None], None]

# Entry columns carried over as they are (besides key, schema and the times).
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "namespace": str,
    "function": str,
    "code_fingerprint": str,
    "version": str,
    "input_fingerprint": str,
    "input_preview": str,
    "llm_provider": str,
    "llm_model": str,
    "prompt_tokens": int,
    "completion_tokens": int,
    "cached_prompt_tokens": int,
    "latency_ms": (int, float),
    "hit_count": int,
}
_ENTRY_JSON = ("arguments", "output")
_ENTRY_TIMES = ("created_at", "expires_at", "last_hit_at")


class TransferError(Exception):
    """The file as a whole cannot be imported (not an export, another format)."""


class BadLine(ValueError):
    """One line that cannot be imported; the message says why."""


# -- export -------------------------------------------------------------------------


@dataclass
class Exported:
    entries: int = 0
    missing: int = 0  # live rows whose value the backend no longer holds
    # Functions whose backend cannot be told here: their entries were left out.
    unknown: dict[str, str] = field(default_factory=dict)


def export_entries(
    out: IO[str], *, function: str | None = None, progress: Progress | None = None
) -> Exported:
    """Write every live entry (of `function`) with its stored value to `out`."""
    recording.flush()
    now = timezone.now()
    rows = Entry.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), status=Entry.Status.LIVE
    )
    if function:
        rows = rows.filter(function=function)
    total = rows.count()
    result = Exported()
    sources: dict[str, CacheBackend] = {}
    # Read once each, not joined to every row: a schema's JSON is the largest column.
    versions: dict[int, SchemaVersion] = {}
    functions_written: set[str] = set()
    out.write(_line({"cachesite": HEADER_KIND, "format": FORMAT, "exported_at": now}))
    seen = 0
    last_id = 0
    while chunk := list(rows.filter(pk__gt=last_id).order_by("pk")[:CHUNK]):
        last_id = chunk[-1].pk
        seen += len(chunk)
        for entry in chunk:
            backend = _source(entry.function, sources, result)
            if backend is None:
                continue
            value = _stored(backend, entry.key)
            if value is None:
                result.missing += 1
                continue
            version = versions.get(entry.schema_version_id)
            if version is None:
                version = versions[entry.schema_version_id] = entry.schema_version
                out.write(_line({"schema_version": _version_record(version)}))
            if entry.function not in functions_written:
                functions_written.add(entry.function)
                described = _function_record(entry.function)
                if described is not None:
                    out.write(_line({"function": described}))
            record = _entry_record(entry, version)
            out.write(_line({"entry": record, **_value_record(value)}))
            result.entries += 1
        if progress is not None:
            progress(seen, total)
    return result


def _source(
    function: str, sources: dict[str, CacheBackend], result: Exported
) -> CacheBackend | None:
    if function in result.unknown:
        return None
    backend = sources.get(function)
    if backend is None:
        try:
            backend = sources[function] = backend_for(function)
        except BackendUnknown as exc:
            result.unknown[function] = str(exc)
            return None
    return backend


def _stored(backend: CacheBackend, key: str) -> str | bytes | None:
    try:
        return backend.get(key)
    except CorruptValue:
        return None  # unreadable here, unreadable wherever it is imported


def _line(record: dict[str, Any]) -> str:
    return orjson.dumps(record).decode() + "\n"


def _version_record(version: SchemaVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "fingerprint": version.fingerprint,
        "number": version.number,
        "json_schema": version.json_schema,
        "field_order": version.field_order,
        "first_seen_at": version.first_seen_at,
    }


def _function_record(name: str) -> dict[str, Any] | None:
    row = CachedFunction.objects.select_related("schema_version").filter(name=name).first()
    if row is None:
        return None
    return {
        "name": row.name,
        "code_fingerprint": row.code_fingerprint,
        "version": row.version,
        "schema": [row.schema_version.name, row.schema_version.fingerprint],
        "last_seen_at": row.last_seen_at,
    }


def _entry_record(entry: Entry, version: SchemaVersion) -> dict[str, Any]:
    record: dict[str, Any] = {"key": entry.key}
    for name in (*_ENTRY_FIELDS, *_ENTRY_JSON, *_ENTRY_TIMES):
        record[name] = getattr(entry, name)
    record["schema"] = [version.name, version.fingerprint]
    return record


def _value_record(value: str | bytes) -> dict[str, str]:
    if isinstance(value, str):
        return {"value": value}
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value_base64": base64.b64encode(value).decode("ascii")}


# -- import -------------------------------------------------------------------------


@dataclass
class Imported:
    entries: int = 0  # rows created, values written
    already: int = 0  # keys already live in the target database: left as they were
    expired: int = 0  # expired since the export: not imported
    schema_versions: int = 0  # rows created
    functions: int = 0  # rows created
    bad_lines: int = 0


@dataclass
class _Pending:
    entry: Entry
    value: str
    ttl: float | None
    backend: CacheBackend


OnBadLine = Callable[[int, str], None]  # (line number, why)


def import_entries(
    lines: Iterable[bytes],
    *,
    to: CacheBackend | None = None,
    strict: bool = False,
    dry_run: bool = False,
    on_bad_line: OnBadLine | None = None,
    progress: Progress | None = None,
    total_bytes: int | None = None,
) -> Imported:
    """Import an export: values into `to` (else each function's own backend),
    rows into this database. A bad line is passed to `on_bad_line` and skipped;
    with `strict` it raises BadLine ("line N: why") after the lines before it
    were imported. `dry_run` reads and checks everything and writes nothing."""
    result = Imported()
    reader = _Reader(to=to, dry_run=dry_run, result=result)
    pending: list[_Pending] = []
    read = 0
    header_seen = False
    for number, raw in enumerate(lines, start=1):
        read += len(raw)
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
            if not isinstance(record, dict):
                raise BadLine("not a JSON object")
            if not header_seen:
                _check_header(record)
                header_seen = True
                continue
            item = reader.read(record)
        except TransferError:
            raise
        except (orjson.JSONDecodeError, BadLine) as exc:
            if not header_seen:
                raise TransferError(
                    f"line {number} is not a cachesite export's first line ({exc})"
                ) from None
            result.bad_lines += 1
            if strict:
                _flush(pending, reader)
                raise BadLine(f"line {number}: {exc}") from None
            if on_bad_line is not None:
                on_bad_line(number, str(exc))
            continue
        if item is not None:
            pending.append(item)
        if len(pending) >= CHUNK:
            _flush(pending, reader)
            if progress is not None:
                progress(read, total_bytes)
    if not header_seen:
        raise TransferError("the file is empty: no cachesite export header")
    _flush(pending, reader)
    if progress is not None:
        progress(read, total_bytes)
    return result


def _check_header(record: dict[str, Any]) -> None:
    if record.get("cachesite") != HEADER_KIND:
        raise TransferError("the first line is not a cachesite entries export header")
    if record.get("format") != FORMAT:
        raise TransferError(
            f"the export has format {record.get('format')!r}; this cachesite reads format {FORMAT}"
        )


class _Reader:
    """Turns lines into pending entries, creating the rows they refer to."""

    def __init__(self, *, to: CacheBackend | None, dry_run: bool, result: Imported) -> None:
        self.to = to
        self.dry_run = dry_run
        self.result = result
        self.now = timezone.now()
        # (name, fingerprint) -> the SchemaVersion here (unsaved on a dry run).
        self.versions: dict[tuple[str, str], SchemaVersion] = {}
        self.backends: dict[str, CacheBackend] = {}

    def read(self, record: dict[str, Any]) -> _Pending | None:
        if "schema_version" in record:
            self._schema_version(_object(record, "schema_version"))
            return None
        if "function" in record:
            self._function(_object(record, "function"))
            return None
        if "entry" in record:
            return self._entry(record)
        raise BadLine("neither an entry, a schema version nor a function")

    def _schema_version(self, data: dict[str, Any]) -> None:
        name, fingerprint = _text(data, "name"), _text(data, "fingerprint")
        if (name, fingerprint) in self.versions:
            return
        version = SchemaVersion.objects.filter(name=name, fingerprint=fingerprint).first()
        if version is None:
            version = SchemaVersion(
                name=name,
                fingerprint=fingerprint,
                number=self._free_number(name, _whole(data, "number")),
                json_schema=_json(data, "json_schema"),
                field_order=data.get("field_order") or [],
                first_seen_at=_time(data, "first_seen_at") or self.now,
            )
            if not self.dry_run:
                version.save()
            self.result.schema_versions += 1
        self.versions[(name, fingerprint)] = version

    def _free_number(self, name: str, wanted: int) -> int:
        """The exported number unless this database already numbers another version so."""
        if not SchemaVersion.objects.filter(name=name, number=wanted).exists():
            return wanted
        highest = SchemaVersion.objects.filter(name=name).aggregate(n=Max("number"))["n"]
        return int(highest or 0) + 1

    def _function(self, data: dict[str, Any]) -> None:
        name = _text(data, "name")
        if CachedFunction.objects.filter(name=name).exists():
            return  # this database's own knowledge of the function is newer
        version = self._version(data)
        if not self.dry_run:
            CachedFunction.objects.create(
                name=name,
                code_fingerprint=_text(data, "code_fingerprint"),
                version=_text(data, "version"),
                schema_version=version,
                last_seen_at=_time(data, "last_seen_at") or self.now,
            )
        self.result.functions += 1

    def _version(self, data: dict[str, Any]) -> SchemaVersion:
        schema = data.get("schema")
        if not (isinstance(schema, list) and len(schema) == 2):
            raise BadLine('"schema" is not [name, fingerprint]')
        version = self.versions.get((str(schema[0]), str(schema[1])))
        if version is None:
            raise BadLine(f"schema {schema[0]} {str(schema[1])[:12]} has no schema_version line")
        return version

    def _entry(self, record: dict[str, Any]) -> _Pending | None:
        data = _object(record, "entry")
        value = _value(record)
        version = self._version(data)
        key = _text(data, "key")
        if len(key) != 64:
            raise BadLine(f"key {key[:70]!r} is not a cachesite key")
        try:
            envelope = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadLine(f"the value is not an envelope: {exc}") from None
        if not isinstance(envelope, dict) or envelope.get("schema_fingerprint") != (
            version.fingerprint
        ):
            raise BadLine("the value is not an envelope of the entry's schema")
        fields: dict[str, Any] = {}
        for name, kind in _ENTRY_FIELDS.items():
            fields[name] = data.get(name, "" if kind is str else 0)
            if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
                raise BadLine(f'"{name}" is not a {getattr(kind, "__name__", "number")}')
        times = {name: _time(data, name) for name in _ENTRY_TIMES}
        expires_at = times["expires_at"]
        if expires_at is not None and expires_at <= self.now:
            self.result.expired += 1
            return None
        ttl = (expires_at - self.now).total_seconds() if expires_at is not None else None
        entry = Entry(
            key=key,
            schema_version=version,
            arguments=data.get("arguments"),
            output=_json(data, "output"),
            created_at=times["created_at"] or self.now,
            expires_at=expires_at,
            last_hit_at=times["last_hit_at"],
            status=Entry.Status.LIVE,
            **fields,
        )
        return _Pending(entry, value, ttl, self._target(entry.function))

    def _target(self, function: str) -> CacheBackend:
        if self.to is not None:
            return self.to
        backend = self.backends.get(function)
        if backend is None:
            try:
                backend = self.backends[function] = backend_for(function)
            except BackendUnknown as exc:
                raise BadLine(f"{exc}; or name the target backend with --to") from None
        return backend


def _flush(pending: list[_Pending], reader: _Reader) -> None:
    """Write a chunk: values first, then their rows in one transaction."""
    if not pending:
        return
    live = set(
        Entry.objects.filter(
            key__in=[item.entry.key for item in pending], status=Entry.Status.LIVE
        ).values_list("key", flat=True)
    )
    fresh: dict[str, _Pending] = {}
    for item in pending:
        if item.entry.key in live or item.entry.key in fresh:
            reader.result.already += 1
        else:
            fresh[item.entry.key] = item
    pending.clear()
    reader.result.entries += len(fresh)
    if reader.dry_run or not fresh:
        return
    for item in fresh.values():
        item.backend.set(item.entry.key, item.value, item.ttl)
    Entry.objects.bulk_create([item.entry for item in fresh.values()])


# -- checking a line's values ---------------------------------------------------------


def _object(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if not isinstance(value, dict):
        raise BadLine(f'"{name}" is not an object')
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise BadLine(f'"{name}" is not text')
    if not value and name in ("name", "fingerprint", "key", "code_fingerprint"):
        raise BadLine(f'"{name}" is missing')
    return value


def _whole(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadLine(f'"{name}" is not a positive whole number')
    return value


def _json(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise BadLine(f'"{name}" is missing')
    return data[name]


def _time(data: dict[str, Any], name: str) -> dt.datetime | None:
    value = data.get(name)
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise BadLine(f'"{name}" is not an ISO 8601 time')
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)


def _value(record: dict[str, Any]) -> str:
    if isinstance(record.get("value"), str):
        return str(record["value"])
    encoded = record.get("value_base64")
    if not isinstance(encoded, str):
        raise BadLine('no "value" (the stored envelope)')
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadLine(f'"value_base64" cannot be decoded: {exc}') from None
