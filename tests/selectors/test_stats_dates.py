"""The overview over a range of whole local days, both ends included."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from extractor.models import Call
from extractor.selectors.stats import overview_of_dates
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paris(settings):
    settings.TIME_ZONE = "Europe/Paris"


def at(*parts: int) -> dt.datetime:
    """A local (Paris) time."""
    return timezone.make_aware(dt.datetime(*parts))


@pytest.fixture
def around_the_20th(paris):
    """A hit just inside each end of 20 March and one just outside each."""
    entry = EntryFactory()
    for moment in (at(2025, 3, 19, 23, 30), at(2025, 3, 21, 0, 10)):
        CallFactory(entry=entry, outcome=Call.Outcome.MISS, created_at=moment)
    for moment in (at(2025, 3, 20, 0, 10), at(2025, 3, 20, 23, 50)):
        CallFactory(entry=entry, created_at=moment)


def test_one_day_is_its_whole_local_day_by_the_hour(around_the_20th):
    day = dt.date(2025, 3, 20)

    result = overview_of_dates(first=day, last=day, now=at(2025, 3, 25, 12, 0))

    assert (result.total.hits, result.total.misses) == (2, 0)
    assert result.bucket == "hour"
    assert len(result.series) == 24
    assert timezone.localtime(result.series[0].start) == at(2025, 3, 20, 0, 0)
    assert timezone.localtime(result.series[-1].start) == at(2025, 3, 20, 23, 0)
    assert result.dates == (day, day)
    assert result.up_to_now is False


def test_a_longer_range_is_drawn_by_the_day_with_both_ends_whole(around_the_20th):
    result = overview_of_dates(
        first=dt.date(2025, 3, 18), last=dt.date(2025, 3, 20), now=at(2025, 3, 25, 12, 0)
    )

    assert result.bucket == "day"
    assert [timezone.localdate(b.start) for b in result.series] == [
        dt.date(2025, 3, 18),
        dt.date(2025, 3, 19),
        dt.date(2025, 3, 20),
    ]
    assert [(b.hits, b.misses) for b in result.series] == [(0, 0), (0, 1), (2, 0)]
    assert (result.total.hits, result.total.misses) == (2, 1)


def test_a_range_ending_today_stops_at_now(paris):
    now = at(2025, 3, 20, 10, 30)
    CallFactory(entry=EntryFactory(), created_at=at(2025, 3, 20, 9, 0))

    result = overview_of_dates(first=dt.date(2025, 3, 19), last=dt.date(2025, 3, 20), now=now)

    assert result.up_to_now is True
    assert result.until == now
    assert timezone.localtime(result.series[-1].start) == at(2025, 3, 20, 10, 0)
    assert result.total.hits == 1


def test_a_day_when_clocks_go_forward_has_23_hours(paris):
    day = dt.date(2025, 3, 30)

    series = overview_of_dates(first=day, last=day, now=at(2025, 4, 2, 0, 0)).series

    assert len(series) == 23
