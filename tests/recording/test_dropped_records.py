"""No silent loss: records the bounded buffer cannot hold are counted exactly and logged."""

from __future__ import annotations

import logging
import re
import signal
import threading

import pytest

from extractor.models import Call, Entry
from extractor.recording import DatabaseRecorder
from extractor.recording.shutdown import install_signal_flush
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db

THREADS = 4
HITS_PER_THREAD = 300
BUFFER_MAX = 50


def test_a_burst_larger_than_the_buffer_counts_every_dropped_record_and_logs_it(
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
    with caplog.at_level(logging.WARNING, logger="extractor.recording"):
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        written = recorder.flush()

    made = THREADS * HITS_PER_THREAD
    assert written == BUFFER_MAX
    assert Call.objects.filter(outcome="hit").count() == BUFFER_MAX
    assert Entry.objects.get().hit_count == BUFFER_MAX
    assert recorder.dropped == made - BUFFER_MAX
    logged = [
        int(count) for count in re.findall(r"dropped the (\d+) oldest call records", caplog.text)
    ]
    assert sum(logged) == recorder.dropped
    assert "buffer was full (50)" in caplog.text


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
