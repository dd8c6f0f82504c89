"""The counters: every call counted once per hour and local day, whoever wrote it."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.forms.models import model_to_dict

from extractor.caching import bypass
from extractor.models import Call, CallRollup, Entry
from extractor.recording import DatabaseRecorder
from extractor.recording.rollups import rebuild_from_calls
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db

FLOATS = ("latency_ms_sum", "latency_ms_max", "original_latency_ms_sum")


def counters() -> dict[tuple[object, ...], dict[str, object]]:
    rows = {}
    for rollup in CallRollup.objects.all():
        fields = model_to_dict(rollup, exclude=["id"])
        names = ("span", "bucket_start", "function", "schema_version", "llm_model", "outcome")
        identity = tuple(fields.pop(name) for name in names)
        rows[identity] = {
            name: pytest.approx(value) if name in FLOATS else value
            for name, value in fields.items()
        }
    return rows


def test_the_counters_equal_a_recount_of_the_call_log_when_every_hit_is_itemised(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    for name in ("Ada Lovelace", "Grace Hopper"):
        extract(name)
        extract(name)
    extract("Ada Lovelace")
    extract("Ada Lovelace", model="gpt-4o")
    with bypass():
        extract("Grace Hopper")
    recorder.flush()

    written = counters()
    rebuild_from_calls()

    assert written == counters()
    assert {(identity[0], identity[-1]) for identity in written} == {
        (span, outcome) for span in ("hour", "day") for outcome in ("hit", "miss", "bypass")
    }


def test_two_writes_to_the_same_hour_add_up(fake_llm, make_extractor, use_recorder):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    recorder.flush()
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    recorder.flush()

    hits = CallRollup.objects.get(span="hour", outcome="hit")
    assert (hits.calls, hits.itemised, hits.without_entry) == (3, 3, 0)
    # Each hit saved what its entry's call used.
    entry_call = Call.objects.get(outcome="miss")
    assert hits.prompt_tokens == 3 * entry_call.prompt_tokens > 0
    assert hits.latency_under_0_1ms + hits.latency_under_1ms + hits.latency_under_10ms == 3
    assert CallRollup.objects.get(span="day", outcome="hit").calls == 3


def test_a_tally_the_database_did_not_take_is_written_with_the_next(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Ada Lovelace")

    def database_away(*args: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    # Every statement refused, at the driver boundary: the database is away.
    with connection.execute_wrapper(database_away), pytest.raises(OperationalError):
        recorder.flush()
    extract("Ada Lovelace")
    assert recorder.pending() == 3
    recorder.flush()

    assert CallRollup.objects.get(span="hour", outcome="hit").calls == 2
    assert CallRollup.objects.get(span="hour", outcome="miss").calls == 1
    assert Entry.objects.get().hit_count == 2
    assert recorder.pending() == 0
