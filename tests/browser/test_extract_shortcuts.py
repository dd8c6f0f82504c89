"""Ctrl+Enter (Cmd+Enter on a Mac) in the Extract text runs the extraction through htmx."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import assert_same_document, mark_document

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("shortcut", ["Control+Enter", "Meta+Enter"])
def test_the_shortcut_in_the_text_submits_the_form_in_place(
    staff_login, live_server, fake_llm, shortcut
):
    fake_llm.answer_with({"name": "Jason", "age": 25})
    page = staff_login()
    page.goto(f"{live_server.url}/extract/")
    expect(page.get_by_text("Ctrl+Enter to run.")).to_be_visible()
    mark_document(page)
    text = page.locator("#id_text")
    text.fill("Jason is 25 years old.")

    text.press(shortcut)

    expect(page.get_by_test_id("outcome")).to_have_text("Miss")
    expect(page.get_by_test_id("output")).to_contain_text('"age": 25')
    assert_same_document(page)  # htmx sent it: no full page load
    # The shortcut does not type a newline into what was sent.
    assert fake_llm.requests[0]["messages"][-1]["content"] == "Jason is 25 years old."
    # It still works on the form htmx swapped in.
    page.locator("#id_text").press(shortcut)
    expect(page.get_by_test_id("outcome")).to_have_text("Hit")
    assert fake_llm.count == 1


def test_a_plain_enter_still_types_a_newline(staff_login, live_server, fake_llm):
    page = staff_login()
    page.goto(f"{live_server.url}/extract/")
    text = page.locator("#id_text")
    text.fill("line one")

    text.press("Enter")

    expect(text).to_have_value("line one\n")
    assert fake_llm.count == 0
