"""Retention: itemised call rows and dead entries older than the retention go.

What goes: call rows created before the cutoff, and entries INVALIDATED or
REPLACED before it (`status_changed_at`, or `created_at` where that is unset),
with their replays (Replay cascades); call rows still linked to such an entry
stay, unlinked (Call.entry is SET_NULL). What stays whatever its age: live and
invalidating entries, the counters (CallRollup: the overview reads ranges
longer than the retention from them), DroppedRecords, invalidation history.

Deletes run a chunk of ids at a time, each chunk its own short transaction, so
the recorder's writer (and SQLite's single write lock) never waits for more
than one chunk while a large backlog is pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from extractor.models import Call, Entry, Replay

logger = logging.getLogger("extractor.retention")

CHUNK = 5000
# Ids travel as statement parameters; SQLite refuses more than 32,766 of them.
MAX_CHUNK = 10_000
Progress = Callable[[int, int], None]  # (rows removed so far, rows to remove)
DEAD = (Entry.Status.INVALIDATED, Entry.Status.REPLACED)


class Pruned(NamedTuple):
    """What a prune removed (or, for a count, would remove)."""

    calls: int
    entries: int
    # Replays of those entries, gone with them (Replay.entry cascades).
    replays: int
    # Rows older than this went; None when retention is off (days == 0).
    cutoff: datetime | None


def retention_days() -> int:
    days: int = settings.EXTRACTOR_CALL_RETENTION_DAYS
    if days < 0:
        raise ImproperlyConfigured(
            f"EXTRACTOR_CALL_RETENTION_DAYS={days} is negative; "
            "use a number of days, or 0 to keep everything."
        )
    return days


def retention_cutoff(*, days: int) -> datetime | None:
    """Rows older than this are pruned; None: keep everything."""
    if days < 0:
        raise ValueError(f"days must be 0 (keep everything) or more, not {days}")
    if days == 0:
        return None
    try:
        return timezone.now() - timedelta(days=days)
    except OverflowError:
        raise ValueError(f"{days} days reaches back before the year 1; use fewer") from None


def retention_count(*, days: int | None = None) -> Pruned:
    """What a prune would remove now, from indexed counts; deletes nothing."""
    cutoff = retention_cutoff(days=retention_days() if days is None else days)
    if cutoff is None:
        return Pruned(0, 0, 0, None)
    entries = _dead_entries(cutoff)
    return Pruned(
        calls=_old_calls(cutoff).count(),
        entries=entries.count(),
        replays=Replay.objects.filter(entry__in=entries).count(),
        cutoff=cutoff,
    )


def retention_prune(
    *,
    days: int | None = None,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
) -> Pruned:
    """Delete call rows and dead entries older than the retention, chunk by chunk."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK}, not {chunk_size}")
    counted = retention_count(days=days)
    cutoff = counted.cutoff
    if cutoff is None:
        return counted
    total = counted.calls + counted.entries
    done = 0
    if progress is not None:
        progress(0, total)

    def advance(removed: int) -> None:
        nonlocal done, total
        done += removed
        total = max(total, done)  # another prune or a late row may shift the count
        if progress is not None:
            progress(done, total)

    # Calls first: an old dead entry's calls are mostly old too, so fewer are
    # left to detach when the entry goes.
    calls = 0
    for removed in _prune_calls(cutoff, chunk_size):
        calls += removed
        advance(removed)
    entries = replays = 0
    for removed, replays_removed in _prune_entries(cutoff, chunk_size):
        entries += removed
        replays += replays_removed
        advance(removed)
    logger.info(
        "pruned %d call rows and %d entries (%d replays) older than %s",
        calls,
        entries,
        replays,
        cutoff.isoformat(),
    )
    return Pruned(calls, entries, replays, cutoff)


def _old_calls(cutoff: datetime) -> QuerySet[Call]:
    return Call.objects.filter(created_at__lt=cutoff).order_by()


def _dead_entries(cutoff: datetime) -> QuerySet[Entry]:
    changed_before = Q(status_changed_at__lt=cutoff) | Q(
        status_changed_at__isnull=True, created_at__lt=cutoff
    )
    return Entry.objects.filter(changed_before, status__in=DEAD).order_by()


def _prune_calls(cutoff: datetime, chunk_size: int) -> Iterator[int]:
    """Delete old call rows oldest first along the created_at index; yield each
    chunk's count once its transaction has committed.

    Each chunk starts at the previous chunk's newest created_at rather than at
    the start of the index: deleted rows stay in the index until vacuum, and
    walking over them again for every chunk would make the prune quadratic.
    Rows at that very timestamp not deleted yet come back in the next chunk.
    """
    floor: datetime | None = None
    while True:
        rows = _old_calls(cutoff)
        if floor is not None:
            rows = rows.filter(created_at__gte=floor)
        chunk = list(rows.order_by("created_at").values_list("pk", "created_at")[:chunk_size])
        if not chunk:
            return
        floor = chunk[-1][1]
        with transaction.atomic():
            # Nothing references a call row: Django sends one DELETE ... WHERE id IN.
            removed, _ = Call.objects.filter(pk__in=[pk for pk, _at in chunk]).delete()
        yield removed


def _prune_entries(cutoff: datetime, chunk_size: int) -> Iterator[tuple[int, int]]:
    """Delete dead entries in id order; yield (entries, replays) per chunk.

    Keyset paging on the id skips the dead entries not old enough yet instead
    of reading them again for every chunk.
    """
    last_id = 0
    while True:
        ids = list(
            _dead_entries(cutoff)
            .filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return
        last_id = ids[-1]
        _detach_calls(ids, chunk_size)
        with transaction.atomic():
            # Django's collector, fed ids only, sends set-based statements: the
            # UPDATE call SET entry_id = NULL (nothing left to detach by now, bar
            # a row written meanwhile), one for Replay.replacement, one DELETE
            # of the replays, then the entries. A relation added to Entry later
            # is honoured too, where hand-written SQL would leave it dangling.
            _total, by_model = Entry.objects.filter(pk__in=ids).only("pk").order_by().delete()
        yield by_model.get(Entry._meta.label, 0), by_model.get(Replay._meta.label, 0)


def _detach_calls(entry_ids: list[int], chunk_size: int) -> None:
    """Unlink the remaining calls of these entries, at most a chunk of rows per
    statement (each its own transaction), over the call.entry_id index.

    Usually there are none: calls link to live entries, so a dead entry's calls
    predate its death and went with the old calls. Left to the collector, an
    entry with many newer calls would make one long UPDATE (5,000 entries with
    25,000 calls held their transaction for 2.1 s on PostgreSQL).
    """
    linked = Call.objects.filter(entry_id__in=entry_ids).order_by()
    while ids := list(linked.values_list("pk", flat=True)[:chunk_size]):
        Call.objects.filter(pk__in=ids).update(entry=None)
