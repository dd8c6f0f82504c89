"""Back and forward on the Entries list and the call log keep the list and the filter
selects in step (issue 8, defect 4)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from extractor.models import Call
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.browser


def test_back_after_two_filters_restores_the_list_and_the_selects(staff_login, live_server):
    EntryFactory(llm_model="gpt-4o-mini", input_preview="mini entry")
    EntryFactory(llm_model="gpt-4o", input_preview="large entry")
    base = live_server.url
    page = staff_login()
    page.goto(f"{base}/entries/")
    rows = page.get_by_test_id("entry-row")
    model = page.get_by_label("LLM model")

    model.select_option("gpt-4o-mini")
    expect(page).to_have_url(re.compile(r"model=gpt-4o-mini"))
    expect(rows).to_have_count(1)
    model.select_option("gpt-4o")
    expect(page).to_have_url(re.compile(r"model=gpt-4o(&|$)"))
    expect(rows).to_contain_text("large entry")

    page.go_back()

    expect(page).to_have_url(re.compile(r"model=gpt-4o-mini"))
    expect(rows).to_contain_text("mini entry")
    expect(page.get_by_label("LLM model")).to_have_value("gpt-4o-mini")
    # The restored page is whole: one header, not a page inside <body>.
    expect(page.locator("header.topbar")).to_have_count(1)


def test_back_on_the_call_log_restores_its_list_and_selects(staff_login, live_server):
    CallFactory(outcome=Call.Outcome.HIT, input_preview="a hit")
    CallFactory(outcome=Call.Outcome.MISS, input_preview="a miss")
    page = staff_login()
    page.goto(f"{live_server.url}/calls/")
    outcome = page.get_by_label("Outcome")

    outcome.select_option("hit")
    expect(page).to_have_url(re.compile(r"outcome=hit"))
    outcome.select_option("miss")
    expect(page).to_have_url(re.compile(r"outcome=miss"))

    page.go_back()

    expect(page).to_have_url(re.compile(r"outcome=hit"))
    expect(page.locator("#call-results")).to_contain_text("a hit")
    expect(page.locator("#call-results")).not_to_contain_text("a miss")
    expect(page.get_by_label("Outcome")).to_have_value("hit")
    expect(page.locator("header.topbar")).to_have_count(1)
