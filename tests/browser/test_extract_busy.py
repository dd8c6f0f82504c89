"""While an extraction runs, the form's fields are disabled (an edit made then would be
lost when the answer replaces the panel), and what was typed is still what is sent."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_fields_are_disabled_during_the_request_and_their_values_sent(
    staff_login, live_server, fake_llm
):
    fake_llm.answer_with({"name": "Jason", "age": 25})
    fake_llm.stall(3)  # long enough to see the request in flight, not a timing assertion
    page = staff_login()
    page.goto(f"{live_server.url}/extract/")
    page.locator("#id_text").fill("Jason is 25 years old.")

    page.get_by_role("button", name="Extract").click()

    for field in ("Text", "Schema", "LLM model"):
        expect(page.get_by_label(field)).to_be_disabled()
    expect(page.get_by_test_id("output")).to_contain_text('"age": 25')
    expect(page.locator("#id_text")).to_be_enabled()
    expect(page.locator("#id_text")).to_have_value("Jason is 25 years old.")
    assert fake_llm.count == 1
