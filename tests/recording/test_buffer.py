"""DatabaseRecorder: buffers call records in memory and writes them in batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
import pytest
from django.db import OperationalError, connection

from extractor.caching import capture_calls
from extractor.caching.envelope import Usage
from extractor.caching.events import CallEvent, Outcome
from extractor.models import Call, Entry
from extractor.recording import DatabaseRecorder
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db


def test_records_wait_in_the_buffer_until_flush_writes_them(fake_llm, make_extractor, use_recorder):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())

    extract("Ada Lovelace")
    extract("Ada Lovelace")
    extract("Ada Lovelace")

    assert recorder.pending() == 3
    assert not Call.objects.exists()
    assert recorder.flush() == 3
    assert recorder.pending() == 0
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "hit", "miss"]
    assert Entry.objects.get().hit_count == 2
    assert recorder.flush() == 0


def test_hit_tuples_and_call_events_handed_to_record_are_written(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    with capture_calls() as captured:
        extract("Ada Lovelace")
        extract("Ada Lovelace")
    flush_records()  # what the installed recorder wrote
    assert [type(record).__name__ for record in captured] == ["CallEvent", "tuple"]
    Call.objects.all().delete()

    recorder = DatabaseRecorder(background=False)
    try:
        for record in captured:
            recorder.record(record)
        assert recorder.pending() == 2
        assert recorder.flush() == 2
    finally:
        recorder.close()

    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "miss"]


def test_a_bounded_buffer_counts_every_hit_and_itemises_the_first_up_to_its_bound(
    fake_llm, make_extractor, flush_records, use_recorder, caplog
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    recorder = use_recorder(DatabaseRecorder(background=False, buffer_max=3))

    with capture_calls() as captured:
        for _ in range(5):
            extract("Ada Lovelace")

    assert len(captured) == 5
    assert recorder.pending() == 5
    with caplog.at_level(logging.WARNING, logger="extractor.recording"):
        assert recorder.flush() == 5
    assert "buffer was full" not in caplog.text  # nothing was dropped: hits were counted
    assert Entry.objects.get().hit_count == 5
    written = sorted(Call.objects.filter(outcome="hit").values_list("latency_ms", flat=True))
    first = sorted(latency * 1000 for _info, _key, _started, latency in captured[:3])
    assert written == pytest.approx(first)


def test_one_bad_record_does_not_sink_the_good_ones_in_its_batch(
    fake_llm, make_extractor, use_recorder, caplog
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    info = extract.cache.info
    # A bypass no cleaning can save: a call row without a key (values the database
    # merely dislikes, such as a negative token count, are cleaned instead).
    bad_envelope = extract.cache.envelope_type(
        schema_fingerprint=info.schema_fingerprint,
        output=info.response_model(name="Bad"),
        usage=Usage(prompt_tokens=-1),
        created_at=time.time(),
    )
    recorder.record(
        CallEvent(
            Outcome.BYPASS,
            info,
            None,  # type: ignore[arg-type]
            b'["Bad","gpt-4o-mini"]',
            time.perf_counter(),
            0.01,
            bad_envelope,
        )
    )
    extract("Ada Lovelace")

    with caplog.at_level(logging.ERROR, logger="extractor.recording"):
        written = recorder.flush()

    assert written == 3
    assert recorder.pending() == 0
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "hit", "miss"]
    assert Entry.objects.get().hit_count == 2
    assert "writing one by one" in caplog.text
    assert "dropped a call record" in caplog.text


# Another thread writes: its rows must be committed for this one to see them.
@pytest.mark.django_db(transaction=True)
def test_a_background_recorder_writes_without_an_explicit_flush(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=True, flush_seconds=0.05))
    extract = make_extractor(person_model())

    extract("Ada Lovelace")
    extract("Ada Lovelace")
    extract("Ada Lovelace")

    # Generous: the writer wakes every 0.05 s.
    wait_until(lambda: Call.objects.count() == 3 and Entry.objects.get().hit_count == 2)
    assert recorder.pending() == 0


def test_close_writes_what_is_left(fake_llm, make_extractor, use_recorder):
    recorder = use_recorder(DatabaseRecorder(background=True, flush_seconds=60))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Ada Lovelace")

    recorder.close()

    assert recorder.pending() == 0
    assert Call.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="ends a server-side session (PostgreSQL suite)"
)
def test_the_writer_keeps_its_connection_and_reconnects_when_the_server_ends_it(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=True, flush_seconds=0.05))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    wait_until(lambda: Call.objects.count() == 1)
    # The writer's session, still open after its write: it is kept between writes.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        writers = [pid for (pid,) in cursor.fetchall()]
        assert writers
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [writers])

    extract("Ada Lovelace")
    extract("Ada Lovelace")

    wait_until(lambda: Entry.objects.get().hit_count == 2)
    assert recorder.pending() == 0
    assert Call.objects.count() == 3


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not _holds(condition):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except OperationalError:
        # The test database on SQLite is in memory with a shared cache: a reader
        # there gets "table is locked" at once while the writer thread commits,
        # where a database file would wait. Not yet, then: look again.
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="refuses connections server-side (PostgreSQL suite)"
)
def test_an_outage_is_retried_with_back_off_and_loses_nothing(
    fake_llm, make_extractor, use_recorder, caplog
):
    recorder = use_recorder(DatabaseRecorder(background=True, flush_seconds=0.05))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    wait_until(lambda: Call.objects.count() == 1)
    hits = 6000  # more than a batch's worth waiting: the case that once retried in a loop
    database = connection.settings_dict["NAME"]
    quoted = connection.ops.quote_name(database)
    # From another database: PostgreSQL will not close the one a session is in.
    params = {**connection.get_connection_params(), "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**params) as admin:
        admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [database],
            )
            with caplog.at_level(logging.ERROR, logger="extractor.recording"):
                for _ in range(hits):
                    extract("Ada Lovelace")
                time.sleep(2)
            attempts = caplog.text.count("writing call records failed")
        finally:
            admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
    connection.close()  # ours was ended too

    # 0.1, 0.2, 0.4, 0.8 s apart: a handful of attempts in 2 s, not thousands (the
    # writer without a back-off made 330).
    assert attempts >= 1, "the outage was never noticed"
    assert attempts <= 6, f"{attempts} attempts in 2 s: no back-off"
    wait_until(lambda: Entry.objects.get().hit_count == hits, seconds=30)
    assert Call.objects.filter(outcome="hit").count() == hits
    assert recorder.dropped == 0
