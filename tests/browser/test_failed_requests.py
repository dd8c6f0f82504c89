"""A failed htmx request says so: a 403 on Replay shows a message in the page, and an
expired session during Extract goes to log in and brings the typed text back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.factories import EntryFactory

pytestmark = pytest.mark.browser


def test_a_csrf_failure_on_replay_shows_a_message(staff_login, live_server, fake_llm):
    page = staff_login()
    entry = EntryFactory()
    page.goto(f"{live_server.url}/entries/{entry.pk}/")
    page.context.clear_cookies(name="csrftoken")

    page.get_by_role("button", name="Replay").click()

    expect(page.get_by_test_id("request-problem")).to_contain_text(
        "The server answered 403: your session or form expired"
    )
    assert fake_llm.count == 0


def test_an_expired_session_during_extract_keeps_the_typed_text(staff_login, live_server):
    base = live_server.url
    page = staff_login()
    page.goto(f"{base}/extract/")
    page.context.clear_cookies(name="sessionid")
    page.locator("#id_text").fill("Grace is 85 years old.")

    page.get_by_role("button", name="Extract").click()

    expect(page).to_have_url(re.compile(r"/login/\?next=/extract/$"))
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/extract/")
    expect(page.locator("#id_text")).to_have_value("Grace is 85 years old.")
