"""Counts: exact while small; past the bound PostgreSQL's estimate, labelled as one."""

from __future__ import annotations

import pytest
from django.db import connection

from extractor.models import Entry
from extractor.selectors.counting import Tally, count_or_estimate, rounded
from tests.factories import EntryFactory, SchemaVersionFactory


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (7, "7"),
        (1_234, "1,200"),
        (54_321, "54,000"),
        (99_999, "100,000"),
        (1_000_000, "1 million"),
        (1_234_567, "1.2 million"),
        (12_345_678, "12.3 million"),
    ],
)
def test_an_estimate_reads_as_a_round_number(number, shown):
    assert rounded(number) == shown
    assert Tally(number, exact=False).label == f"about {shown}"


def test_an_exact_count_reads_in_full():
    assert Tally(1_234_567, exact=True).label == "1,234,567"


def test_a_floor_reads_as_one():
    assert Tally(1_001, exact=False, at_least=True).label == "more than 1,000"


@pytest.mark.django_db
def test_up_to_the_bound_the_count_is_exact():
    EntryFactory.create_batch(3)

    assert count_or_estimate(Entry.objects.all(), exact_up_to=3) == Tally(3, exact=True)


@pytest.mark.django_db
def test_past_the_bound_postgresql_estimates_and_sqlite_counts():
    version = SchemaVersionFactory()
    Entry.objects.bulk_create(EntryFactory.build_batch(30, schema_version=version))

    tally = count_or_estimate(Entry.objects.all(), exact_up_to=10)

    if connection.vendor == "postgresql":
        assert not tally.exact
        assert tally.value >= 11  # never less than it read
        assert tally.label.startswith(("about ", "more than "))
    else:
        assert tally == Tally(30, exact=True)


@pytest.mark.django_db
def test_a_list_pruned_since_the_last_analyze_is_still_counted_exactly():
    version = SchemaVersionFactory()
    Entry.objects.bulk_create(EntryFactory.build_batch(300, schema_version=version))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # the statistics now say about 300 rows
    Entry.objects.exclude(pk__in=Entry.objects.order_by("pk")[:3]).delete()

    assert count_or_estimate(Entry.objects.all(), exact_up_to=10) == Tally(3, exact=True)
