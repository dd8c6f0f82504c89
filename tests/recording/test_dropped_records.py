"""No silent loss: records the bounded buffer cannot hold are counted exactly and logged."""

from __future__ import annotations

import logging
import signal
import threading

import pytest
from django.db.models import Sum

from extractor.models import Call, CallRollup, DroppedRecords, Entry
from extractor.recording import DatabaseRecorder
from extractor.recording.shutdown import install_signal_flush
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db

THREADS = 4
HITS_PER_THREAD = 300
BUFFER_MAX = 50


def test_a_burst_larger_than_the_buffer_is_counted_exactly_and_itemised_up_to_the_bound(
    fake_llm, make_extractor, flush_records, use_recorder, caplog
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    recorder = use_recorder(DatabaseRecorder(background=False, buffer_max=BUFFER_MAX))
    start = threading.Barrier(THREADS)

    def hits() -> None:
        start.wait()
        for _ in range(HITS_PER_THREAD):
            extract("Ada Lovelace")

    workers = [threading.Thread(target=hits) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    written = recorder.flush()

    made = THREADS * HITS_PER_THREAD
    assert written == made
    assert recorder.dropped == 0
    assert Entry.objects.get().hit_count == made
    counted = CallRollup.objects.filter(span="hour", outcome="hit").aggregate(
        calls=Sum("calls"), itemised=Sum("itemised")
    )
    assert counted == {"calls": made, "itemised": BUFFER_MAX}
    assert Call.objects.filter(outcome="hit").count() == BUFFER_MAX
    assert not DroppedRecords.objects.exists()


def test_hits_beyond_the_itemised_rate_are_counted_without_rows(
    fake_llm, make_extractor, flush_records, use_recorder
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    use_recorder(DatabaseRecorder(background=False, hits_per_second=5))

    for _ in range(40):
        extract("Ada Lovelace")
    flush_records()

    hits = CallRollup.objects.get(span="hour", outcome="hit")
    assert hits.calls == 40 == Entry.objects.get().hit_count
    # 40 hits take well under a second or two: 5 a second, each second begun.
    assert 5 <= hits.itemised == Call.objects.filter(outcome="hit").count() <= 15


def test_computed_calls_past_the_bound_keep_their_counts_and_the_loss_is_saved_and_logged(
    fake_llm, make_extractor, use_recorder, caplog
):
    recorder = use_recorder(DatabaseRecorder(background=False, buffer_max=3))
    extract = make_extractor(person_model())

    for number in range(7):
        extract(f"Person {number}")
    with caplog.at_level(logging.WARNING, logger="extractor.recording"):
        recorder.flush()

    # Each miss paid for an LLM call: all 7 are counted, 3 kept their rows.
    assert Call.objects.filter(outcome="miss").count() == 3 == Entry.objects.count()
    assert CallRollup.objects.get(span="hour", outcome="miss").calls == 7
    assert recorder.dropped == 4
    assert DroppedRecords.objects.get().count == 4
    assert "4 computed call records were counted without their rows" in caplog.text


def test_an_app_can_opt_out_of_the_signal_flush(settings):
    settings.EXTRACTOR_RECORD_SIGNAL_FLUSH = True
    ours = signal.getsignal(signal.SIGTERM)

    settings.EXTRACTOR_RECORD_SIGNAL_FLUSH = False

    assert signal.getsignal(signal.SIGTERM) is not ours
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signal_handlers_are_left_alone_outside_the_main_thread(settings):
    settings.EXTRACTOR_RECORD_SIGNAL_FLUSH = False
    before = signal.getsignal(signal.SIGTERM)

    thread = threading.Thread(target=install_signal_flush)
    thread.start()
    thread.join()

    assert signal.getsignal(signal.SIGTERM) == before
