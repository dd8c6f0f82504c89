"""Export rows: the list's meaning of each status, and keyset batches that lose no row."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from extractor.models import Entry
from extractor.selectors import export
from extractor.selectors.entries import EntryFilters, EntryState, entry_list
from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

FUNCTION = "app:extract_person"


def rows(batches) -> list[tuple]:
    return [row for batch in batches for row in batch]


def test_status_says_live_only_for_what_callers_reach():
    current = SchemaVersionFactory()
    CachedFunctionFactory(name=FUNCTION, schema_version=current, code_fingerprint="now")
    past = timezone.now() - dt.timedelta(minutes=1)
    made = {
        "live": EntryFactory(function=FUNCTION, schema_version=current, code_fingerprint="now"),
        "expired": EntryFactory(
            function=FUNCTION, schema_version=current, code_fingerprint="now", expires_at=past
        ),
        # Older code and expired too: stale is what keeps callers away for good.
        "stale": EntryFactory(function=FUNCTION, schema_version=current, expires_at=past),
        "invalidated": EntryFactory(function=FUNCTION, status=Entry.Status.INVALIDATED),
        "replaced": EntryFactory(function=FUNCTION, status=Entry.Status.REPLACED),
    }

    exported = export.entry_export(EntryFilters(state=EntryState.ALL))

    status_by_id = {row.id: row.status for row in rows(exported.batches)}
    assert status_by_id == {entry.pk: status for status, entry in made.items()}


def test_batches_cross_from_hit_entries_to_never_hit_ones_in_the_lists_order(monkeypatch):
    monkeypatch.setattr(export, "BATCH_SIZE", 2)
    now = timezone.now()
    for n in range(3):
        EntryFactory(last_hit_at=now - dt.timedelta(minutes=n))
    for _ in range(2):
        EntryFactory()  # never hit: last in the list
    filters = EntryFilters()

    exported = export.entry_export(filters)

    batches = list(exported.batches)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [row.id for row in rows(batches)] == list(
        entry_list(filters).values_list("pk", flat=True)
    )
