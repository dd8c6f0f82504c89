"""The overview's figures: hit rate, what hits saved, what provider prompt caching saved."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from extractor import extraction
from extractor.models import Call
from extractor.selectors.stats import Price, bucket_start, call_cost, overview, price_of
from tests.factories import CallFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

# USD per million tokens: input, cached input, output.
PRICES = {"model-a": (1.0, 0.5, 2.0), "model-b": (10.0, 1.0, 20.0)}


@pytest.fixture
def prices(settings):
    settings.EXTRACTOR_PRICES = PRICES
    return PRICES


def miss(entry, **fields):
    """The miss that stored `entry`: it reached the LLM with the entry's usage."""
    return CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        miss_reason=Call.MissReason.NEW_INPUT,
        latency_ms=entry.latency_ms,
        prompt_tokens=entry.prompt_tokens,
        cached_prompt_tokens=entry.cached_prompt_tokens,
        completion_tokens=entry.completion_tokens,
        **fields,
    )


def hits(entry, count, latency_ms=0.02, **fields):
    return CallFactory.create_batch(count, entry=entry, latency_ms=latency_ms, **fields)


# -- prices -----------------------------------------------------------------------------


def test_a_priced_model_and_its_dated_snapshots_have_its_price(prices, settings):
    settings.EXTRACTOR_PRICES = {**PRICES, "claude-3-5-haiku-latest": (0.8, 0.08, 4.0)}

    # Three numbers: the cache writes at 1.25x and 2x the input price.
    assert price_of("model-a") == Price(1.0, 0.5, 1.25, 2.0, 2.0)
    assert price_of("model-a-2024-07-18") == Price(1.0, 0.5, 1.25, 2.0, 2.0)
    assert price_of("claude-3-5-haiku-20241022") == Price(0.8, 0.08, 1.0, 1.6, 4.0)


@pytest.mark.parametrize("model", ["model-a-nano", "model-ab", "", "unknown"])
def test_other_models_are_unpriced_rather_than_guessed(prices, model):
    assert price_of(model) is None


def test_a_malformed_price_is_unpriced_not_a_crash(settings):
    settings.EXTRACTOR_PRICES = {"broken": [1.0, "cheap"], "short": [1.0]}

    assert price_of("broken") is None
    assert price_of("short") is None


def test_call_cost_bills_cached_prompt_tokens_at_the_cached_price(prices):
    # 800 uncached in at $1, 200 cached at $0.5, 500 out at $2, per million.
    assert call_cost("model-a", prompt=1000, cached=200, completion=500) == pytest.approx(
        1900 / 1_000_000
    )
    assert call_cost("unknown", prompt=1000, cached=0, completion=10) is None


# -- the figures --------------------------------------------------------------------------


def test_the_figures_for_a_known_set_of_calls(prices):
    entry = EntryFactory(
        llm_model="model-a",
        prompt_tokens=1000,
        cached_prompt_tokens=200,
        completion_tokens=500,
        latency_ms=800.0,
    )
    miss(entry)
    hits(entry, 3, latency_ms=0.02)
    # Another miss that reached the LLM with 400 prompt tokens from the provider's cache.
    miss(EntryFactory(llm_model="model-a", prompt_tokens=1000, cached_prompt_tokens=400))
    CallFactory(entry=None, outcome=Call.Outcome.ERROR, llm_model="model-a")
    CallFactory(
        entry=None, outcome=Call.Outcome.BYPASS, llm_model="model-a", cached_prompt_tokens=100
    )

    total = overview(days=None).total

    assert (total.calls, total.hits, total.misses, total.errors) == (7, 3, 2, 1)
    assert total.hit_rate == pytest.approx(3 / 5)
    assert total.tokens_saved == 3 * (1000 + 500)
    assert total.cost_saved == pytest.approx(3 * 1900 / 1_000_000)
    assert total.latency_saved_ms == pytest.approx(3 * (800 - 0.02))
    assert total.reached_llm == 4
    assert total.provider_cached_tokens == 200 + 400 + 100
    # Each cached token cost $0.5 instead of $1 per million.
    assert total.provider_cost_saved == pytest.approx(700 * 0.5 / 1_000_000)
    assert total.unpriced_models == set()


def test_hits_are_priced_by_their_entry_model(prices):
    hits(EntryFactory(llm_model="model-b", prompt_tokens=100, completion_tokens=10), 2)

    total = overview(days=None).total

    assert total.cost_saved == pytest.approx(2 * (100 * 10 + 10 * 20) / 1_000_000)


def test_unpriced_models_are_reported_and_left_out_of_the_cost(prices):
    hits(EntryFactory(llm_model="mystery-1"), 2)
    miss(EntryFactory(llm_model="mystery-2", cached_prompt_tokens=50))
    miss(EntryFactory(llm_model="mystery-3", cached_prompt_tokens=0))

    result = overview(days=None)

    assert result.total.tokens_saved == 2 * (120 + 30)
    assert result.total.cost_saved == 0
    assert result.total.provider_cost_saved == 0
    # mystery-3 cached nothing, so no estimate is missing for it.
    assert result.unpriced_models == ["mystery-1", "mystery-2"]


def test_hits_without_an_entry_count_in_the_hit_rate_but_save_nothing_known(prices):
    entry = EntryFactory(llm_model="model-a")
    miss(entry)
    hits(entry, 1)
    CallFactory(entry=None, outcome=Call.Outcome.HIT, llm_model="")

    total = overview(days=None).total

    assert (total.hits, total.hits_without_entry) == (2, 1)
    assert total.hit_rate == pytest.approx(2 / 3)
    assert total.tokens_saved == 120 + 30
    assert total.unpriced_models == set()


def test_no_calls_means_no_hit_rate():
    result = overview(days=7)

    assert result.total.hit_rate is None
    assert result.has_calls is False
    assert result.by_schema == []


def test_figures_are_split_per_schema(prices):
    user = SchemaVersionFactory(name="app.schemas.User")
    invoice = SchemaVersionFactory(name="app.schemas.Invoice")
    user_entry = EntryFactory(schema_version=user, llm_model="model-a")
    invoice_entry = EntryFactory(schema_version=invoice, llm_model="model-a")
    miss(user_entry)
    hits(user_entry, 3)
    miss(invoice_entry)

    by_label = {s.label: s for s in overview(days=None).by_schema}

    assert list(by_label) == ["User", "Invoice"]  # busiest first
    assert (by_label["User"].hits, by_label["User"].misses) == (3, 1)
    assert by_label["User"].name == "app.schemas.User"
    assert (by_label["Invoice"].hits, by_label["Invoice"].misses) == (0, 1)
    assert by_label["Invoice"].hit_rate == 0
    assert by_label["User"].tokens_saved == 3 * 150


def test_the_window_leaves_out_older_calls(prices):
    now = timezone.now()
    entry = EntryFactory(llm_model="model-a")
    hits(entry, 2, created_at=now - dt.timedelta(days=2))
    hits(entry, 5, created_at=now - dt.timedelta(days=10))

    assert overview(days=7, now=now).total.hits == 2
    assert overview(days=30, now=now).total.hits == 7
    assert overview(days=1, now=now).total.hits == 0
    assert overview(days=1, now=now).has_calls is True
    assert overview(days=None, now=now).total.hits == 7


def test_real_extractions_are_counted_with_their_usage(fake_llm, flush_records, settings):
    settings.EXTRACTOR_PRICES = {"gpt-4o-mini": (0.15, 0.075, 0.60)}
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)

    for _ in range(3):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    result = overview(days=1)
    assert (result.total.hits, result.total.misses) == (2, 1)
    assert result.total.tokens_saved == 2 * 1540
    assert result.total.provider_cached_tokens == 1024
    expected_hit = ((1500 - 1024) * 0.15 + 1024 * 0.075 + 40 * 0.60) / 1_000_000
    assert result.total.cost_saved == pytest.approx(2 * expected_hit)
    assert result.total.provider_cost_saved == pytest.approx(1024 * 0.075 / 1_000_000)
    assert [s.label for s in result.by_schema] == ["UserDetail"]


# -- the series ---------------------------------------------------------------------------


def test_day_buckets_cover_the_window_with_empty_days_as_zero(settings):
    settings.TIME_ZONE = "Europe/Paris"
    now = timezone.make_aware(dt.datetime(2025, 3, 20, 15, 0))
    entry = EntryFactory()
    hits(entry, 2, created_at=now - dt.timedelta(days=2))
    CallFactory(entry=entry, outcome=Call.Outcome.MISS, created_at=now - dt.timedelta(days=2))
    hits(entry, 1, created_at=now - dt.timedelta(hours=1))
    # Exactly at `now`, on the hour: its hour is in the window (SQLite too).
    CallFactory(entry=None, outcome=Call.Outcome.ERROR, created_at=now)
    CallFactory(entry=None, outcome=Call.Outcome.BYPASS, created_at=now)  # not drawn

    result = overview(days=7, now=now)

    assert result.bucket == "day"
    days = [timezone.localtime(b.start).date() for b in result.series]
    assert days == [dt.date(2025, 3, 13) + dt.timedelta(days=n) for n in range(8)]
    counts = {
        timezone.localtime(b.start).date(): (b.hits, b.misses, b.errors) for b in result.series
    }
    assert counts[dt.date(2025, 3, 18)] == (2, 1, 0)
    assert counts[dt.date(2025, 3, 20)] == (1, 0, 1)
    assert counts[dt.date(2025, 3, 19)] == (0, 0, 0)
    assert sum(b.total for b in result.series) == 5
    assert result.total.errors == 1


def test_a_call_late_in_the_local_day_is_counted_on_that_local_day(settings):
    settings.TIME_ZONE = "America/New_York"
    now = timezone.make_aware(dt.datetime(2025, 6, 10, 12, 0))
    # 23:30 in New York is already the next day in UTC.
    CallFactory(created_at=timezone.make_aware(dt.datetime(2025, 6, 8, 23, 30)))

    series = overview(days=7, now=now).series

    assert [timezone.localtime(b.start).date() for b in series if b.hits] == [dt.date(2025, 6, 8)]


def test_hour_buckets_for_a_short_window(settings):
    settings.TIME_ZONE = "UTC"
    now = timezone.make_aware(dt.datetime(2025, 3, 20, 15, 40))
    hits(EntryFactory(), 3, created_at=now - dt.timedelta(hours=2))

    result = overview(days=1, now=now)

    assert result.bucket == "hour"
    assert len(result.series) == 25  # 14:00 yesterday to 15:00 today
    assert result.series[0].start == timezone.make_aware(dt.datetime(2025, 3, 19, 15, 0))
    assert result.series[-1].start == timezone.make_aware(dt.datetime(2025, 3, 20, 15, 0))
    busy = [(b.start.hour, b.hits) for b in result.series if b.hits]
    assert busy == [(13, 3)]


def test_hour_buckets_across_a_daylight_saving_change_are_each_one_hour(settings):
    settings.TIME_ZONE = "Europe/Paris"
    # Clocks went forward at 02:00 on 30 March 2025.
    now = timezone.make_aware(dt.datetime(2025, 3, 30, 12, 0))

    starts = [b.start.astimezone(dt.UTC) for b in overview(days=1, now=now).series]

    steps = {later - earlier for earlier, later in itertools.pairwise(starts)}
    assert steps == {dt.timedelta(hours=1)}
    assert len(starts) == 25
    local_hours = [timezone.localtime(start).hour for start in starts]
    assert 2 not in local_hours  # 02:00 to 03:00 never happened that night
    # 24 real hours back from 12:00 CEST is 11:00 CET.
    assert (local_hours[0], local_hours[-1]) == (11, 12)


def test_the_repeated_hour_of_a_daylight_saving_change_is_not_counted_twice(settings):
    settings.TIME_ZONE = "Europe/Paris"
    # Clocks went back at 03:00 on 26 October 2025: 02:00 to 03:00 happened twice.
    now = timezone.make_aware(dt.datetime(2025, 10, 26, 12, 0))
    CallFactory(created_at=dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC))  # 02:30 CEST

    series = overview(days=1, now=now).series

    assert sum(b.hits for b in series) == 1


def test_all_time_starts_at_the_first_bucket_with_calls(settings):
    now = timezone.now()
    hits(EntryFactory(), 1, created_at=now - dt.timedelta(days=40))

    series = overview(days=None, now=now).series

    assert series[0].start == bucket_start(now - dt.timedelta(days=40), "day")
    assert len(series) == 41
    assert overview(days=None, now=now - dt.timedelta(days=50)).series == []


def test_the_overview_still_answers_once_the_call_log_is_pruned(prices):
    entry = EntryFactory(llm_model="model-a", prompt_tokens=1000, completion_tokens=500)
    miss(entry)
    hits(entry, 3)
    before = overview(days=None).total

    Call.objects.all().delete()  # what retention does to old call rows; counters stay
    after = overview(days=None).total

    assert (after.calls, after.hits, after.misses, after.tokens_saved) == (4, 3, 1, 3 * 1500)
    assert after.cost_saved == pytest.approx(before.cost_saved)
    assert before.cost_saved > 0
