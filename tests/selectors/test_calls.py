"""The call log's query: each filter narrows, time bounds are half-open."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from extractor.models import Call
from extractor.selectors.calls import CallFilters, call_list, function_names, model_names
from tests.factories import CachedFunctionFactory, CallFactory, EntryFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


def ids(filters: CallFilters) -> set[int]:
    return set(call_list(filters).values_list("pk", flat=True))


@pytest.fixture
def calls():
    a = EntryFactory(function="app:extract_a", llm_model="gpt-4o-mini")
    b = EntryFactory(function="app:extract_b", llm_model="gpt-4o")
    return {
        "hit_a": CallFactory(entry=a, created_at=NOW - dt.timedelta(hours=3)),
        "miss_a": CallFactory(
            entry=a, outcome=Call.Outcome.MISS, created_at=NOW - dt.timedelta(hours=2)
        ),
        "hit_b": CallFactory(entry=b, created_at=NOW - dt.timedelta(hours=1)),
        "error_b": CallFactory(
            entry=None,
            function="app:extract_b",
            llm_model="gpt-4o",
            outcome=Call.Outcome.ERROR,
            created_at=NOW,
        ),
    }


def test_no_filters_is_every_call_newest_first(calls):
    assert list(call_list(CallFilters())) == [
        calls["error_b"],
        calls["hit_b"],
        calls["miss_a"],
        calls["hit_a"],
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (CallFilters(outcome="hit"), {"hit_a", "hit_b"}),
        (CallFilters(outcome="error"), {"error_b"}),
        (CallFilters(function="app:extract_a"), {"hit_a", "miss_a"}),
        (CallFilters(llm_model="gpt-4o"), {"hit_b", "error_b"}),
        (CallFilters(outcome="hit", llm_model="gpt-4o"), {"hit_b"}),
        (CallFilters(outcome="bypass"), set()),
    ],
)
def test_each_filter_narrows(calls, filters, expected):
    assert ids(filters) == {calls[name].pk for name in expected}


def test_since_is_inclusive_and_until_exclusive(calls):
    at_miss = calls["miss_a"].created_at

    assert ids(CallFilters(since=at_miss)) == {calls[n].pk for n in ("miss_a", "hit_b", "error_b")}
    assert ids(CallFilters(until=at_miss)) == {calls["hit_a"].pk}
    assert ids(CallFilters(since=at_miss, until=at_miss + dt.timedelta(hours=1))) == {
        calls["miss_a"].pk
    }


def test_choices_come_from_known_functions_and_recorded_models(calls):
    CachedFunctionFactory(name="app:extract_b")
    CachedFunctionFactory(name="app:extract_a")
    CallFactory(entry=None, llm_model="", created_at=timezone.now())

    assert function_names() == ["app:extract_a", "app:extract_b"]
    assert model_names() == ["gpt-4o", "gpt-4o-mini"]
