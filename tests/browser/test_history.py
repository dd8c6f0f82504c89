"""Back and forward on the Entries list keep the list and the filter selects in step
(issue 8, defect 4)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.factories import EntryFactory

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
