"""The Schemas, Calls and Overview pages in Chromium, on calls the app really made."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from extractor.models import SchemaVersion
from tests.browser.helpers import assert_same_document, extract, mark_document
from tests.factories import SchemaVersionFactory

pytestmark = pytest.mark.browser


def test_the_schemas_page_compares_two_versions_field_by_field(staff_login, live_server):
    SchemaVersionFactory(
        name="tests.schemas.Invoice",
        number=1,
        json_schema={"properties": {"total": {"type": "number"}}, "required": ["total"]},
    )
    SchemaVersionFactory(
        name="tests.schemas.Invoice",
        number=2,
        json_schema={
            "properties": {
                "total": {"type": "number", "description": "Amount due, with tax"},
                "currency": {"type": "string"},
            },
            "required": ["total", "currency"],
        },
    )
    page = staff_login()

    page.goto(f"{live_server.url}/schemas/")
    card = page.locator("section.schema", has_text="Invoice")
    card.get_by_label("From").select_option(label="v1")
    card.get_by_label("To").select_option(label="v2")
    card.get_by_role("button", name="Compare").click()

    diff = page.locator("table.schema-diff")
    expect(diff.locator("tr.added", has_text="currency")).to_be_visible()
    expect(diff.locator("tr.changed", has_text="total")).to_contain_text("Amount due, with tax")


def test_the_call_log_filters_by_outcome_in_place(staff_login, live_server, fake_llm):
    page = staff_login()
    extract(page, live_server.url, "Jason is 25 years old")
    extract(page, live_server.url, "Jason is 25 years old")
    extract(page, live_server.url, "Ada is 36")

    page.goto(f"{live_server.url}/calls/")
    rows = page.locator("#call-results tbody tr")
    expect(rows).to_have_count(3)
    mark_document(page)
    page.get_by_label("Outcome").select_option(label="Hit")

    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/calls/\?outcome=hit(&|$)"))
    assert_same_document(page)


def test_the_overview_shows_what_the_cache_saved(staff_login, live_server, fake_llm):
    fake_llm.report_usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=0)
    page = staff_login()
    extract(page, live_server.url, "Jason is 25 years old")
    extract(page, live_server.url, "Jason is 25 years old")
    extract(page, live_server.url, "Jason is 25 years old")

    page.goto(f"{live_server.url}/")

    expect(page.get_by_test_id("hit-rate")).to_have_text("66.7%")
    expect(page.get_by_test_id("tokens-saved")).to_have_text("2,200")
    expect(page.get_by_role("img", name="Hits, misses and errors")).to_be_visible()
    assert SchemaVersion.objects.filter(name="extractor.schemas.UserDetail").exists()
