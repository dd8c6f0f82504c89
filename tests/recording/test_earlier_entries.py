"""How a miss is explained from the entries stored before it: which earlier entries are
read (two queries a batch, by key and by input), which one counts (the latest stored
before the call began), and the reason and detail each difference gives.

test_miss_reasons.py goes through the decorator and the recorder; these tests call
`EarlierEntries` and `explain_miss` on rows made with the factories, to reach the cases
a whole call makes hard to arrange (two entries of a key, equal times, a boundary)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from extractor.caching.events import MissReason
from extractor.models import Entry
from extractor.recording import reasons
from extractor.recording.reasons import EarlierEntries, MissContext, explain_miss
from tests.factories import EntryFactory, InvalidationFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def context_like(entry: Entry, **changes) -> MissContext:
    """The context of a call identical to the one that stored `entry`, then `changes`."""
    same = MissContext(
        key=entry.key,
        function=entry.function,
        namespace=entry.namespace,
        input_fingerprint=entry.input_fingerprint,
        schema_version=entry.schema_version,
        code_fingerprint=entry.code_fingerprint,
        version=entry.version,
        model=entry.llm_model,
        model_argument="model",
        at=NOW,
    )
    return dataclasses.replace(same, **changes)


def loaded_for(*contexts: MissContext) -> EarlierEntries:
    return EarlierEntries.load(
        keys=[context.key for context in contexts],
        inputs=[(context.function, context.input_fingerprint) for context in contexts],
    )


def stored(**fields) -> Entry:
    return EntryFactory(created_at=fields.pop("created_at", NOW - dt.timedelta(hours=1)), **fields)


# Which earlier entries are read


def test_every_input_of_a_batch_finds_the_entries_stored_before_it():
    first, second = stored(), stored()
    v2 = SchemaVersionFactory()
    misses = [
        context_like(entry, key=f"new-{entry.pk}", schema_version=v2) for entry in (first, second)
    ]

    earlier = loaded_for(*misses)

    assert [explain_miss(miss, earlier)[0] for miss in misses] == [MissReason.SCHEMA_CHANGED] * 2


def test_an_entry_of_another_function_with_the_same_input_fingerprint_is_not_read():
    entry = stored()
    other_function = context_like(entry, key="new", function="app:other")

    assert explain_miss(other_function, loaded_for(other_function)) == (MissReason.NEW_INPUT, "")


def test_a_batch_is_read_in_two_queries_whatever_it_explains(django_assert_num_queries):
    """By key and by input, with each entry's schema version and invalidation joined:
    explaining a schema change or an invalidation reads nothing more."""
    invalidated = stored(
        status=Entry.Status.INVALIDATED, invalidation=InvalidationFactory(target="app:f")
    )
    schema_changed = [stored() for _ in range(3)]
    v2 = SchemaVersionFactory()
    misses = [context_like(invalidated)] + [
        context_like(entry, key=f"new-{entry.pk}", schema_version=v2) for entry in schema_changed
    ]

    with django_assert_num_queries(2):
        earlier = loaded_for(*misses)
        explained = [explain_miss(miss, earlier) for miss in misses]

    assert explained[0] == (MissReason.INVALIDATED, "Function app:f")
    assert [reason for reason, _detail in explained[1:]] == [MissReason.SCHEMA_CHANGED] * 3


def test_a_large_batch_is_read_in_chunks_and_nothing_is_missed(
    monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(reasons, "_LOOKUP_CHUNK", 2)
    entries = [stored() for _ in range(5)]
    by_input = [context_like(entry, key=f"new-{entry.pk}") for entry in entries]
    by_key = [context_like(entry) for entry in entries]

    # 10 keys (the 5 stored, 5 new) in 5 chunks, 5 input fingerprints in 3.
    with django_assert_num_queries(8):
        earlier = loaded_for(*by_key, *by_input)

    assert all(earlier.for_key(entry.key, NOW) == entry for entry in entries)
    assert all(
        earlier.for_input(entry.function, entry.input_fingerprint, NOW) == entry
        for entry in entries
    )


def test_the_outputs_of_earlier_entries_are_not_read():
    """A batch can compare with thousands of entries; their outputs play no part."""
    entry = stored()

    assert loaded_for(context_like(entry)).for_key(entry.key, NOW).get_deferred_fields() == {
        "output"
    }


# Which earlier entry counts


@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_the_latest_earlier_entry_of_a_key_explains_the_miss(order):
    invalidated = stored(status=Entry.Status.INVALIDATED, created_at=NOW - dt.timedelta(days=2))
    expired = stored(
        key=invalidated.key,
        created_at=NOW - dt.timedelta(days=1),
        expires_at=NOW - dt.timedelta(hours=1),
    )
    earlier = EarlierEntries()
    for entry in [invalidated, expired] if order == "oldest first" else [expired, invalidated]:
        earlier.add(entry)

    assert explain_miss(context_like(expired), earlier)[0] == MissReason.EXPIRED


@pytest.mark.parametrize("order", ["first written first", "last written first"])
def test_of_two_entries_stored_at_the_same_time_the_last_written_counts(order):
    first = stored(status=Entry.Status.INVALIDATED)
    last = stored(key=first.key, created_at=first.created_at)  # live: the backend lost it
    assert last.pk > first.pk
    earlier = EarlierEntries()
    for entry in [first, last] if order == "first written first" else [last, first]:
        earlier.add(entry)

    assert explain_miss(context_like(first), earlier)[0] == MissReason.EVICTED


def test_an_entry_stored_as_the_call_began_was_not_there_to_be_missed():
    entry = stored(created_at=NOW)
    earlier = EarlierEntries()
    earlier.add(entry)

    assert explain_miss(context_like(entry, at=NOW), earlier) == (MissReason.NEW_INPUT, "")


def test_a_value_is_expired_from_the_instant_its_ttl_ends():
    entry = stored(expires_at=NOW)
    earlier = EarlierEntries()
    earlier.add(entry)

    assert explain_miss(context_like(entry, at=NOW), earlier) == (
        MissReason.EXPIRED,
        "expired at 2026-11-30 12:00:00",
    )


# The reason and its detail


def test_the_earlier_model_is_the_one_asked_for_not_the_one_the_provider_named():
    """Asked for "gpt-4o", the provider answers "gpt-4o-2024-08-06": asking for "gpt-4o"
    again is not a model change (here the code changed)."""
    entry = stored(arguments={"text": "Ada", "model": "gpt-4o"}, llm_model="gpt-4o-2024-08-06")
    again = context_like(entry, key="new", model="gpt-4o", code_fingerprint="f" * 64)

    assert explain_miss(again, loaded_for(again))[0] == MissReason.CODE_CHANGED


def test_a_model_that_is_not_an_argument_is_read_from_what_the_provider_named():
    """A function whose model comes from a setting: the entries' models still differ."""
    entry = stored(arguments={"text": "Ada"}, llm_model="model-a")
    again = context_like(entry, key="new", model="model-b", model_argument=None)

    assert explain_miss(again, loaded_for(again)) == (MissReason.MODEL_CHANGED, "model-a → model-b")


def test_a_version_removed_reads_as_a_dash():
    entry = stored(version="3")
    again = context_like(entry, key="new", version="")

    assert explain_miss(again, loaded_for(again)) == (MissReason.VERSION_CHANGED, "3 → —")


def test_a_different_key_with_nothing_stored_changed_names_what_the_function_reads():
    entry = stored()
    again = context_like(entry, key="new")

    assert explain_miss(again, loaded_for(again)) == (
        MissReason.STATE_CHANGED,
        "an environment variable, setting or instance attribute the function reads",
    )


def test_a_schema_change_names_both_versions():
    v1 = SchemaVersionFactory(number=1)
    entry = stored(schema_version=v1)
    again = context_like(entry, key="new", schema_version=SchemaVersionFactory(number=2))

    assert explain_miss(again, loaded_for(again)) == (MissReason.SCHEMA_CHANGED, "v1 → v2")
