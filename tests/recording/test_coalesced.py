"""Hits that waited for another caller's computation: counted apart, shown on the overview."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from extractor.models import CallRollup
from extractor.recording import DatabaseRecorder
from extractor.selectors.stats import overview
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db


def test_callers_served_by_another_callers_computation_are_hits_counted_as_coalesced(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    fake_llm.stall(0.3)
    start = threading.Barrier(6)

    def one(_: int) -> object:
        start.wait()
        return extract("Ada Lovelace")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, range(6)))
    extract("Ada Lovelace")  # a plain hit, later
    recorder.flush()

    assert fake_llm.count == 1
    hits = CallRollup.objects.get(span="hour", outcome="hit")
    assert (hits.calls, hits.coalesced) == (6, 5)
    assert CallRollup.objects.get(span="day", outcome="hit").coalesced == 5
    assert overview(days=1).total.coalesced == 5


def test_the_overview_says_how_many_calls_waited_instead_of_calling_the_llm(
    fake_llm, make_extractor, use_recorder
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    fake_llm.stall(0.3)
    start = threading.Barrier(3)

    def one(_: int) -> object:
        start.wait()
        return extract("Grace Hopper")

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(one, range(3)))
    recorder.flush()
    browser = Client()
    browser.force_login(
        get_user_model().objects.create_user(username="ada", password="x", is_staff=True)
    )

    page = browser.get("/").content.decode()

    assert 'data-testid="coalesced">2 calls waited for another' in page
