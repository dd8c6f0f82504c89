"""The overview per function and per model, with latency percentiles, from the counters."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from extractor.models import Call
from extractor.selectors.stats import NO_MODEL, overview
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db

PRICES = {"model-a": (1.0, 0.5, 2.0), "model-b": (10.0, 1.0, 20.0)}
INVOICE, PERSON = "app.jobs:parse_invoice", "app.jobs:parse_person"


@pytest.fixture
def calls(settings):
    """parse_invoice on model-a: a miss of 800 ms and three hits of 0.5 ms.
    parse_person on model-b: a miss of 2.5 s and an error of a minute."""
    settings.EXTRACTOR_PRICES = PRICES
    invoice = EntryFactory(
        function=INVOICE, llm_model="model-a", prompt_tokens=1000, completion_tokens=500
    )
    CallFactory(entry=invoice, outcome=Call.Outcome.MISS, latency_ms=800.0)
    CallFactory.create_batch(3, entry=invoice, latency_ms=0.5)
    person = EntryFactory(function=PERSON, llm_model="model-b")
    CallFactory(entry=person, outcome=Call.Outcome.MISS, latency_ms=2_500.0)
    CallFactory(
        entry=None,
        function=PERSON,
        schema_version=person.schema_version,
        outcome=Call.Outcome.ERROR,
        llm_model="model-b",
        latency_ms=60_000.0,
    )


def test_each_function_has_its_figures(calls):
    by_function = {s.name: s for s in overview(days=None).by_function}

    assert list(by_function) == [INVOICE, PERSON]  # busiest first
    invoice, person = by_function[INVOICE], by_function[PERSON]
    assert (invoice.calls, invoice.hits, invoice.misses, invoice.errors) == (4, 3, 1, 0)
    assert invoice.hit_rate == pytest.approx(3 / 4)
    assert invoice.tokens_saved == 3 * 1500
    # Each hit saved 1000 x $1 + 500 x $2 per million.
    assert invoice.cost_saved == pytest.approx(3 * 2000 / 1_000_000)
    assert (person.calls, person.hits, person.misses, person.errors) == (2, 0, 1, 1)
    assert person.tokens_saved == 0


def test_each_model_has_its_figures(calls):
    by_model = {s.label: s for s in overview(days=None).by_model}

    assert list(by_model) == ["model-a", "model-b"]
    assert (by_model["model-a"].hits, by_model["model-a"].misses) == (3, 1)
    assert (by_model["model-b"].misses, by_model["model-b"].errors) == (1, 1)
    assert by_model["model-a"].cost_saved == pytest.approx(3 * 2000 / 1_000_000)


def test_hits_without_an_entry_are_under_no_model(calls):
    CallFactory(entry=None, outcome=Call.Outcome.HIT, llm_model="")

    by_model = {s.label: s for s in overview(days=None).by_model}

    assert by_model[NO_MODEL].hits == 1
    assert by_model[NO_MODEL].hits_without_entry == 1


def test_hit_and_miss_times_are_read_from_their_own_buckets(calls):
    result = overview(days=None)
    by_function = {s.name: s for s in result.by_function}

    invoice, person = by_function[INVOICE], by_function[PERSON]
    assert (invoice.hit_p50.label, invoice.hit_p95.label) == ("≤ 1 ms", "≤ 1 ms")
    assert (invoice.miss_p50.label, invoice.miss_p95.label) == ("≤ 1 s", "≤ 1 s")
    # The minute-long error is not a miss: it leaves the LLM time alone.
    assert person.miss_p95.label == "≤ 3 s"
    assert person.hit_p50 is None
    # Overall: hits from the cache, misses from the LLM (800 ms and 2.5 s).
    assert result.total.hit_p95.label == "≤ 1 ms"
    assert (result.total.miss_p50.label, result.total.miss_p95.label) == ("≤ 1 s", "≤ 3 s")


def test_the_queries_do_not_grow_with_the_counter_rows(settings):
    settings.EXTRACTOR_PRICES = PRICES
    now = timezone.now()
    entry = EntryFactory(function=INVOICE, llm_model="model-a")
    CallFactory(entry=entry, created_at=now)
    with CaptureQueriesContext(connection) as few:
        overview(days=30, now=now)
    # Many functions, models and hours: hundreds of counter rows.
    for hour in range(30):
        for name in ("a", "b", "c"):
            other = EntryFactory(function=f"app.jobs:{name}", llm_model=f"model-{name}")
            CallFactory(entry=other, created_at=now - dt.timedelta(hours=hour))
            CallFactory(entry=other, outcome=Call.Outcome.MISS, created_at=now)

    with CaptureQueriesContext(connection) as many:
        result = overview(days=30, now=now)

    assert len(result.by_function) == 4
    assert len(many) == len(few)
