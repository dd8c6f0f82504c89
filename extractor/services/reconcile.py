"""Reconcile: the entry rows against the keys their backends really hold.

The two drift apart without anyone asking: a backend evicts or loses values (a
size limit, a Redis `maxmemory` policy, a restored or wiped directory) while
their rows stay live, and values are stored whose rows never arrive (a process
killed before its recorder wrote, records dropped under load). Both sides are
walked in chunks, so neither the table nor the keyspace is ever held in memory:

- rows: every live, unexpired entry, its key looked up in its function's backend.
  A row whose value is gone is marked INVALIDATED (no Invalidation of its own):
  the pages stop calling it live, and its next call is an ordinary miss;
- keys: every key of each backend in use, looked up among the rows. A key with
  no live row (nor one being invalidated) is served to callers but invisible to
  the pages, which can neither show nor invalidate it; fixing deletes it.

A key is only taken for an orphan once its value is older than ORPHAN_GRACE: a
value stored a moment ago has its row in some process's recorder buffer still.
Keys that are not entry keys (64 hex digits), such as single-flight locks, are
never touched.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import orjson
from django.db.models import Q
from django.utils import timezone

from extractor import recording
from extractor.caching.backends import CacheBackend
from extractor.caching.defaults import default_backend
from extractor.caching.errors import CorruptValue
from extractor.models import Entry
from extractor.selectors.distinct import distinct_values
from extractor.services.invalidation import BackendUnknown, backend_for

logger = logging.getLogger("extractor.reconcile")

CHUNK = 1000
# Seconds a value may exist without its row before it counts as an orphan.
ORPHAN_GRACE = 600.0
ENTRY_KEY = re.compile(r"[0-9a-f]{64}")
# The rows that account for a key: a live one, or one whose invalidation is not done.
ACCOUNTED = (Entry.Status.LIVE, Entry.Status.INVALIDATING)

# (what is being walked, done so far, total or None while unknown)
Progress = Callable[[str, int, int | None], None]


@dataclass
class BackendReport:
    """What reconcile found (and fixed) in one backend."""

    label: str
    rows_checked: int = 0
    rows_vanished: int = 0  # live rows whose value the backend no longer holds
    rows_fixed: int = 0
    keys_checked: int = 0
    keys_orphaned: int = 0  # entry keys with no live row, older than the grace
    keys_fixed: int = 0
    keys_young: int = 0  # without a row, but too new to tell: left alone
    functions: list[str] = field(default_factory=list)


@dataclass
class Reconciliation:
    backends: list[BackendReport]
    # Functions whose backend cannot be told here: their rows were not checked.
    unknown: dict[str, str] = field(default_factory=dict)


def reconcile(
    *,
    function: str | None = None,
    fix_rows: bool = False,
    fix_keys: bool = False,
    progress: Progress | None = None,
) -> Reconciliation:
    """Compare rows and keys; mark vanished rows (`fix_rows`), delete orphaned keys
    (`fix_keys`). With `function`, its rows and the keys of its backend: keys carry
    no function name, so the key side is that whole backend."""
    recording.flush()  # this process's rows for values cached a moment ago
    functions = [function] if function else _functions_in_use()
    result = Reconciliation(backends=[])
    reports: dict[int, BackendReport] = {}
    backends: dict[int, CacheBackend] = {}
    for name in functions:
        try:
            backend = backend_for(name)
        except BackendUnknown as exc:
            # A function long gone with only dead rows left is not worth a warning.
            if function or Entry.objects.filter(_live_rows([name])).exists():
                result.unknown[name] = str(exc)
            continue
        report = reports.get(id(backend))
        if report is None:
            report = reports[id(backend)] = BackendReport(backend.label)
            backends[id(backend)] = backend
        report.functions.append(name)
    if not function and not reports:
        backend = default_backend()  # no rows at all: its keys are still worth a look
        reports[id(backend)] = BackendReport(backend.label)
        backends[id(backend)] = backend
    for ident, report in reports.items():
        backend = backends[ident]
        if report.functions:
            _check_rows(backend, report, fix=fix_rows, progress=progress)
        _check_keys(backend, report, fix=fix_keys, progress=progress)
        result.backends.append(report)
    return result


def _functions_in_use() -> list[str]:
    return sorted(set(distinct_values(Entry, "function")))


def _live_rows(functions: list[str]) -> Q:
    now = timezone.now()
    return Q(status=Entry.Status.LIVE, function__in=functions) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def _check_rows(
    backend: CacheBackend, report: BackendReport, *, fix: bool, progress: Progress | None
) -> None:
    rows = Entry.objects.filter(_live_rows(report.functions))
    total = rows.count()
    what = f"Rows of {backend.label}"
    last_id = 0
    while chunk := list(
        rows.filter(pk__gt=last_id).order_by("pk").values_list("pk", "key")[:CHUNK]
    ):
        last_id = chunk[-1][0]
        vanished = [pk for pk, key in chunk if not _holds(backend, key)]
        report.rows_checked += len(chunk)
        report.rows_vanished += len(vanished)
        if fix and vanished:
            # Still live: a row replaced or invalidated meanwhile keeps its new status.
            report.rows_fixed += Entry.objects.filter(
                pk__in=vanished, status=Entry.Status.LIVE
            ).update(status=Entry.Status.INVALIDATED, status_changed_at=timezone.now())
        if progress is not None:
            progress(what, report.rows_checked, total)
    if report.rows_fixed:
        logger.info(
            "reconcile: marked %d rows of %s invalidated, their values were gone",
            report.rows_fixed,
            backend.label,
        )


def _check_keys(
    backend: CacheBackend, report: BackendReport, *, fix: bool, progress: Progress | None
) -> None:
    what = f"Keys of {backend.label}"
    for chunk in _chunks(key for key in backend.scan_keys() if ENTRY_KEY.fullmatch(key)):
        report.keys_checked += len(chunk)
        known = set(
            Entry.objects.filter(key__in=chunk, status__in=ACCOUNTED).values_list("key", flat=True)
        )
        orphans = []
        for key in chunk:
            if key in known:
                continue
            age = _age(backend, key)
            if age is None:
                continue  # gone meanwhile
            if age < ORPHAN_GRACE:
                report.keys_young += 1
            else:
                orphans.append(key)
        report.keys_orphaned += len(orphans)
        if fix and orphans:
            report.keys_fixed += backend.delete_many(orphans)
        if progress is not None:
            progress(what, report.keys_checked, None)
    if report.keys_fixed:
        logger.info(
            "reconcile: deleted %d keys of %s that had no entry row",
            report.keys_fixed,
            backend.label,
        )


def _holds(backend: CacheBackend, key: str) -> bool:
    try:
        return backend.get(key) is not None
    except CorruptValue:
        return True  # there, if unreadable: the next call replaces it


def _age(backend: CacheBackend, key: str) -> float | None:
    """Seconds since the value under `key` was stored; None if it is gone. A value
    that is not an envelope (no time in it) is taken as old."""
    try:
        raw = backend.get(key)
    except CorruptValue:
        return float("inf")
    if raw is None:
        return None
    try:
        created = orjson.loads(raw).get("created_at")
    except (orjson.JSONDecodeError, AttributeError):
        return float("inf")
    if not isinstance(created, (int, float)):
        return float("inf")
    return time.time() - created


def _chunks(keys: Iterator[str]) -> Iterator[list[str]]:
    while chunk := list(islice(keys, CHUNK)):
        yield chunk
