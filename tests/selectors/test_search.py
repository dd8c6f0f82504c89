"""Entries' text search: answered from the trigram index (PostgreSQL) or the FTS5
table (SQLite), kept in step with the entries as they are written."""

from __future__ import annotations

import pytest
from django.db import connection

from extractor.models import Entry
from extractor.selectors.search import FTS_TABLE, TRIGRAM_INDEX, entry_text_search
from tests.factories import EntryFactory

pytestmark = pytest.mark.django_db


def found(text: str) -> set[int]:
    return set(Entry.objects.filter(entry_text_search(text)).values_list("pk", flat=True))


def person(name: str, city: str, **fields) -> Entry:
    text = f"{name} lives in {city}"
    return EntryFactory(
        arguments={"text": text, "model": "gpt-4o-mini"},
        input_preview=f"{text} · gpt-4o-mini",
        output={"name": name, "city": city},
        **fields,
    )


def test_the_search_reads_the_index_not_every_entry():
    person("Ada", "Toronto")
    search = Entry.objects.filter(entry_text_search("Toronto")).order_by()

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A handful of rows is cheaper to scan: ask whether the index can serve.
            cursor.execute("SET LOCAL enable_seqscan = off")
        assert TRIGRAM_INDEX in search.explain()
    else:
        plan = search.explain()
        assert f"SCAN {FTS_TABLE} VIRTUAL TABLE INDEX" in plan
        # Entries are reached by id from the matches, never scanned.
        assert not any(line.endswith("SCAN extractor_entry") for line in plan.splitlines())


def test_input_output_and_arguments_are_searched_whatever_the_case():
    by_input = EntryFactory(input_preview="Marguerite in Lyon")
    by_output = EntryFactory(output={"name": "Zanzibar Quinn"})
    by_arguments = EntryFactory(arguments={"text": "a note from Quito"}, input_preview="x")
    EntryFactory()

    assert found("marguerite") == {by_input.pk}
    assert found("ZANZIBAR") == {by_output.pk}
    assert found("quito") == {by_arguments.pk}


def test_an_entry_is_found_by_its_new_text_once_changed_and_not_by_the_old():
    entry = person("Ada", "Toronto")

    Entry.objects.filter(pk=entry.pk).update(output={"name": "Ada", "city": "Osaka"})

    assert found("Osaka") == {entry.pk}
    assert found("Toronto") == {entry.pk}  # still in its input
    Entry.objects.filter(pk=entry.pk).update(input_preview="moved", arguments=None)
    assert found("Toronto") == set()


def test_hit_counts_and_status_changes_leave_the_search_as_it_was():
    entry = person("Ada", "Toronto")

    Entry.objects.filter(pk=entry.pk).update(hit_count=9, status=Entry.Status.REPLACED)

    assert found("Toronto") == {entry.pk}


def test_a_deleted_entry_leaves_the_index_consistent():
    kept, gone = person("Ada", "Toronto"), person("Bob", "Toronto")

    gone.delete()

    assert found("Toronto") == {kept.pk}
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            # Compares the FTS index with the entries table; raises if they differ.
            cursor.execute(
                f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"
            )


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("100%", {"saved 100% of it"}),
        ("a_b", {"path a_b"}),
        ('say "hi"', {'they say "hi" there'}),
        ("hi", {'they say "hi" there'}),  # too short for trigrams
    ],
)
def test_special_characters_are_text_and_short_texts_still_match(text, matches):
    for preview in ["saved 100% of it", "saved 1000 of it", "path a_b", "path axb"]:
        EntryFactory(input_preview=preview, arguments=None, output={})
    EntryFactory(input_preview='they say "hi" there', arguments=None, output={})

    previews = set(
        Entry.objects.filter(entry_text_search(text)).values_list("input_preview", flat=True)
    )

    assert previews == matches


def test_a_key_is_found_by_its_hex_prefix_only():
    entry = EntryFactory()
    EntryFactory()

    assert found(entry.key[:10]) == {entry.pk}
    assert found(entry.key[:10].upper()) == {entry.pk}
