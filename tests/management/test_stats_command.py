"""manage.py stats: the overview's counters as terminal tables."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from extractor.models import Call
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("stats", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_hit_rate_savings_and_the_busiest_function(settings):
    settings.EXTRACTOR_PRICES = {"gpt-4o-mini": (1.0, 0.5, 2.0)}
    entry = EntryFactory(prompt_tokens=1000, completion_tokens=500)
    CallFactory(entry=entry, outcome=Call.Outcome.MISS)
    CallFactory.create_batch(3, entry=entry)  # hits, each saving the entry's 1,500 tokens

    out = run()

    assert "Cache, the last 7 days" in out
    assert "75.0%" in out  # 3 hits of 4
    assert "3 / 1 / 0" in out
    assert "4,500" in out
    assert "$0.0060" in out  # 3 x (1000 x $1 + 500 x $2) per million
    assert "extract_UserDetail" in out
    assert "UserDetail" in out


def test_days_bound_the_window_and_all_reaches_back(settings):
    CallFactory(created_at=timezone.now() - dt.timedelta(days=30))

    assert "No calls counted in the last 7 days." in run("--days", "7")
    assert "Cache, all time" in run("--all")


def test_a_bad_window_is_refused_with_its_option():
    with pytest.raises(CommandError, match="--days"):
        run("--days", "0")
    with pytest.raises(CommandError, match="not allowed with"):
        run("--days", "3", "--all")
