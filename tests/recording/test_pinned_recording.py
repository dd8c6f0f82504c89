"""Behaviours of the recorder no other test pinned (issue 11): records kept through
a database outage, and the default ttl on an entry adopted from a hit."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import DatabaseError, OperationalError, connection

from extractor.models import Call, Entry
from extractor.recording import DatabaseRecorder
from tests.recording.helpers import calls_in_order, person_model

pytestmark = pytest.mark.django_db


def database_away(*args: object) -> None:
    raise OperationalError("server closed the connection unexpectedly")


def test_a_batch_the_database_was_away_for_is_kept_and_written_when_it_is_back(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    for _call in range(3):
        extract("Ada Lovelace")

    # Every statement refused at the driver boundary: the database is away.
    with connection.execute_wrapper(database_away), pytest.raises(OperationalError):
        recorder.flush()
    assert recorder.pending() == 3

    assert recorder.flush() == 3
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "hit", "miss"]
    assert Entry.objects.get().hit_count == 2
    assert recorder.dropped == 0


def test_records_the_database_went_away_for_while_writing_one_by_one_are_kept(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Grace Hopper")
    extract("Ada Lovelace")
    statements = 0

    def bad_batch_then_away(execute: Callable[..., object], *args: object) -> object:
        nonlocal statements
        statements += 1
        if statements == 1:
            raise DatabaseError("value too long")  # the batch fails: one by one next
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(bad_batch_then_away), pytest.raises(OperationalError):
        recorder.flush()
    assert statements > 1, "the one-by-one fallback never ran"
    assert recorder.pending() == 3

    recorder.flush()
    assert Call.objects.count() == 3
    assert Entry.objects.get(input_preview__contains="Ada").hit_count == 1
    assert recorder.dropped == 0


def test_an_adopted_value_expires_after_the_default_ttl_when_the_decorator_sets_none(
    fake_llm, make_extractor, flush_records, settings
):
    settings.EXTRACTOR_CACHE_TTL = 0.3
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    Entry.objects.all().delete()
    extract("Ada Lovelace")  # a hit on a value this database never saw stored
    flush_records()
    adopted = Entry.objects.get()
    assert adopted.arguments is None
    assert adopted.expires_at is not None

    time.sleep(0.6)
    extract("Ada Lovelace")
    flush_records()

    last = calls_in_order()[-1]
    assert (last.outcome, last.miss_reason) == ("miss", "expired")
