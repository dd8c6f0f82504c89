"""Keyset pagination: every sort pages through the whole list, forward and back,
across ties and the never-hit entries; cursors that cannot be read are refused."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone

from extractor.models import Entry
from extractor.selectors.entries import (
    SORTS,
    EntryFilters,
    EntryState,
    entry_list,
    entry_listing,
    entry_ordering,
)
from extractor.selectors.keyset import BadCursor, Cursor, KeysetPage, encode, parse_cursor
from tests.factories import EntryFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def entries() -> list[Entry]:
    """Eleven entries with tied hit counts, tied last hits and four never hit."""
    rows = []
    for n in range(11):
        hit = n % 3 != 0
        rows.append(
            EntryFactory(
                created_at=NOW - dt.timedelta(hours=n),
                hit_count=n % 2 if hit else 0,
                # Pairs of entries share a last hit: only the id orders them.
                last_hit_at=NOW - dt.timedelta(minutes=n // 2) if hit else None,
            )
        )
    return rows


def entry_page(filters: EntryFilters, cursor: Cursor | None, size: int) -> KeysetPage[Entry]:
    return entry_listing(filters, cursor, size).page


def walk_forward(filters: EntryFilters, size: int) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = entry_page(filters, cursor, size)
        pages.append([entry.pk for entry in page.object_list])
        if not page.has_next:
            return pages
        cursor = parse_cursor({"after": page.next_cursor}, entry_ordering(filters.sort), Entry)


@pytest.mark.parametrize("sort", list(SORTS))
def test_pages_cover_the_list_in_its_order_once_each_way(entries, sort):
    filters = EntryFilters(state=EntryState.ALL, sort=sort)
    whole = [entry.pk for entry in entry_list(filters)]

    forward = walk_forward(filters, size=2)

    assert [pk for page in forward for pk in page] == whole
    assert all(len(page) == 2 for page in forward[:-1])
    # Back from the last page, each "previous" link gives the page before it.
    ordering = entry_ordering(sort)
    page = entry_page(filters, Cursor(_keys(ordering, entry_list(filters)[9]), after=True), 2)
    backward = []
    while page.has_previous:
        cursor = parse_cursor({"before": page.previous_cursor}, ordering, Entry)
        page = entry_page(filters, cursor, 2)
        backward.append([entry.pk for entry in page.object_list])
    assert backward == forward[:5][::-1]


def test_the_last_hit_order_puts_never_hit_entries_last_newest_first(entries):
    pages = walk_forward(EntryFilters(state=EntryState.ALL), size=4)

    never_hit = [entry.pk for entry in entries if entry.last_hit_at is None]
    assert [pk for page in pages for pk in page][-4:] == sorted(never_hit, reverse=True)


def test_a_short_page_before_the_start_becomes_the_first_page(entries):
    filters = EntryFilters(state=EntryState.ALL, sort="-created_at")
    ordering = entry_ordering(filters.sort)
    second = entry_list(filters)[1]

    page = entry_page(filters, Cursor(_keys(ordering, second), after=False), size=4)

    assert page.is_first
    assert not page.has_previous
    assert [entry.pk for entry in page.object_list] == [e.pk for e in entries[:4]]


def test_a_cursor_round_trips_through_the_query_string(entries):
    ordering = entry_ordering("-last_hit_at")
    entry = entries[1]

    cursor = parse_cursor({"after": encode(ordering, entry)}, ordering, Entry)

    assert cursor == Cursor((entry.last_hit_at, entry.pk), after=True)


def token(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"after": "%%%"},
        {"after": base64.urlsafe_b64encode(b"not json").decode()},
        {"after": token("hits", 3)},  # a key short
        {"after": token("newest", NOW.isoformat(), 1)},  # another sort's
        {"after": token("hits", True, 1)},
        {"after": token("hits", -1, 1)},
        {"after": token("hits", 2**63, 1)},
        {"after": token("hits", 3, "1")},
        {"after": token("hits", None, 1)},  # hit_count is never empty
        {"after": token("hits", 3, 1), "before": token("hits", 3, 1)},
        {"before": "A" * 400},
    ],
)
def test_a_cursor_that_cannot_be_read_is_refused(params):
    with pytest.raises(BadCursor):
        parse_cursor(params, entry_ordering("-hit_count"), Entry)


@pytest.mark.parametrize(
    "moment", ["yesterday", "2025-05-01T12:00:00", 20250501], ids=["text", "naive", "number"]
)
def test_a_cursor_time_must_be_an_aware_timestamp(moment):
    with pytest.raises(BadCursor):
        parse_cursor({"after": token("newest", moment, 1)}, entry_ordering("-created_at"), Entry)


def test_no_cursor_is_the_first_page():
    assert parse_cursor({"after": "", "before": ""}, entry_ordering("-created_at"), Entry) is None


def test_the_page_after_a_removed_last_row_is_empty_and_knows_what_came_before(entries):
    filters = EntryFilters(state=EntryState.ALL, sort="-created_at")
    ordering = entry_ordering(filters.sort)
    last = entries[-1]
    cursor = Cursor(_keys(ordering, entries[-2]), after=True)
    last.delete()

    page = entry_page(filters, cursor, size=3)

    assert page.object_list == []
    assert page.has_previous
    assert not page.has_next


def _keys(ordering, row) -> tuple[object, ...]:
    return tuple(getattr(row, key.field) for key in ordering.keys)


def test_rows_tied_on_the_sort_value_are_not_lost_between_pages():
    now = timezone.now()
    tied = [EntryFactory(hit_count=5, created_at=now) for _ in range(5)]

    pages = walk_forward(EntryFilters(sort="-hit_count"), size=2)

    assert [pk for page in pages for pk in page] == [entry.pk for entry in tied[::-1]]
