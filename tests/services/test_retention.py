"""Retention: old call rows and old dead entries go, in chunks; the rest stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from extractor.models import Call, CallRollup, DroppedRecords, Entry, Replay
from extractor.services.retention import retention_count, retention_prune
from tests.factories import CallFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

DEAD = (Entry.Status.INVALIDATED, Entry.Status.REPLACED)


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def test_old_calls_go_and_recent_ones_stay(settings):
    settings.EXTRACTOR_CALL_RETENTION_DAYS = 10
    entry = EntryFactory(created_at=days_ago(60))
    old = CallFactory.create_batch(3, entry=entry, created_at=days_ago(11))
    recent = CallFactory.create_batch(2, entry=entry, created_at=days_ago(9))

    pruned = retention_prune()

    assert (pruned.calls, pruned.entries) == (3, 0)
    assert set(Call.objects.values_list("pk", flat=True)) == {c.pk for c in recent}
    assert not Call.objects.filter(pk__in=[c.pk for c in old]).exists()
    assert Entry.objects.filter(pk=entry.pk).exists()  # live, however old


def test_live_and_invalidating_entries_stay_whatever_their_age():
    kept = [
        EntryFactory(status=status, created_at=days_ago(400), status_changed_at=days_ago(400))
        for status in (Entry.Status.LIVE, Entry.Status.INVALIDATING)
    ]

    assert retention_prune().entries == 0
    assert set(Entry.objects.values_list("pk", flat=True)) == {e.pk for e in kept}


def test_old_dead_entries_go_their_calls_detached_their_replays_with_them():
    invalidated = EntryFactory(
        status=Entry.Status.INVALIDATED, created_at=days_ago(90), status_changed_at=days_ago(40)
    )
    # No status_changed_at (rows from before it was kept): created_at decides.
    replaced = EntryFactory(status=Entry.Status.REPLACED, created_at=days_ago(40))
    recently_replaced = EntryFactory(
        status=Entry.Status.REPLACED, created_at=days_ago(90), status_changed_at=days_ago(2)
    )
    live = EntryFactory(created_at=days_ago(90))
    call = CallFactory(entry=invalidated, created_at=days_ago(1))
    Replay.objects.create(entry=invalidated, output={"a": 1})
    accepted = Replay.objects.create(entry=live, output={"a": 2}, replacement=replaced)

    pruned = retention_prune()

    assert (pruned.entries, pruned.replays) == (2, 1)
    assert set(Entry.objects.values_list("pk", flat=True)) == {recently_replaced.pk, live.pk}
    call.refresh_from_db()
    assert call.entry_id is None
    assert call.key == invalidated.key  # the call row stays, and keeps its key
    accepted.refresh_from_db()
    assert accepted.replacement_id is None
    assert list(Replay.objects.all()) == [accepted]


def test_calls_are_detached_a_chunk_at_a_time_never_one_by_one():
    entry = EntryFactory(status=Entry.Status.REPLACED, created_at=days_ago(40))
    CallFactory.create_batch(20, entry=entry, created_at=days_ago(1))
    table = Call._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        retention_prune(chunk_size=10)

    updates = [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')]
    # Two chunks of ten, then the collector's own (empty) one as the entry goes.
    assert len(updates) == 3
    assert Call.objects.filter(entry__isnull=True).count() == 20


def test_a_chunk_smaller_than_the_rows_still_removes_them_all():
    at = days_ago(31)  # ties on created_at must not stop the walk along the index
    CallFactory.create_batch(5, entry=None, created_at=at)
    CallFactory.create_batch(2, entry=None, created_at=days_ago(45))
    for status in (*DEAD, *DEAD, Entry.Status.INVALIDATED):
        EntryFactory(status=status, created_at=days_ago(50), status_changed_at=days_ago(35))
    reported: list[tuple[int, int]] = []

    pruned = retention_prune(
        chunk_size=2, progress=lambda done, total: reported.append((done, total))
    )

    assert (pruned.calls, pruned.entries) == (7, 5)
    assert not Call.objects.exists()
    assert not Entry.objects.exists()
    assert reported[0] == (0, 12)
    assert reported[-1] == (12, 12)
    assert len(reported) == 1 + 4 + 3  # a report per chunk: calls 2+2+2+1, entries 2+2+1


def test_dry_run_counts_right_and_deletes_nothing():
    dead = EntryFactory(status=Entry.Status.INVALIDATED, created_at=days_ago(40))
    Replay.objects.create(entry=dead, output={})
    CallFactory.create_batch(3, entry=dead, created_at=days_ago(35))
    CallFactory(entry=dead, created_at=days_ago(5))

    counted = retention_count()

    assert (counted.calls, counted.entries, counted.replays) == (3, 1, 1)
    assert (Call.objects.count(), Entry.objects.count(), Replay.objects.count()) == (4, 1, 1)
    assert retention_prune()[:3] == counted[:3]


def test_zero_days_keeps_everything(settings):
    settings.EXTRACTOR_CALL_RETENTION_DAYS = 0
    dead = EntryFactory(status=Entry.Status.REPLACED, created_at=days_ago(3000))
    CallFactory(entry=dead, created_at=days_ago(3000))

    assert retention_prune() == (0, 0, 0, None)
    assert retention_prune(days=0) == (0, 0, 0, None)
    assert (Call.objects.count(), Entry.objects.count()) == (1, 1)


def test_counters_and_dropped_records_are_never_pruned():
    CallFactory(entry=None, created_at=days_ago(400))
    CallRollup.objects.create(
        span=CallRollup.Span.DAY,
        bucket_start=days_ago(400),
        function="tests:f",
        schema_version=SchemaVersionFactory(),
        outcome=Call.Outcome.HIT,
        calls=1,
        itemised=1,
    )
    DroppedRecords.objects.create(at=days_ago(400), count=3, process="host:1", reason="test")
    counters = list(CallRollup.objects.order_by("pk").values())
    dropped = list(DroppedRecords.objects.values())

    assert retention_prune().calls == 1
    assert list(CallRollup.objects.order_by("pk").values()) == counters
    assert list(DroppedRecords.objects.values()) == dropped


def test_a_negative_retention_is_refused(settings):
    settings.EXTRACTOR_CALL_RETENTION_DAYS = -1
    with pytest.raises(ImproperlyConfigured, match="use a number of days, or 0"):
        retention_prune()
    with pytest.raises(ValueError, match="chunk_size must be between 1 and"):
        retention_prune(days=1, chunk_size=0)
