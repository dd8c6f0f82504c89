"""Logging in through the real page in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_anonymous_visitors_land_on_the_login_form(live_server, page, transactional_db):
    page.goto(f"{live_server.url}/extract/")

    expect(page).to_have_url(f"{live_server.url}/login/?next=/extract/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_staff_log_in_and_reach_the_overview(staff_login):
    page = staff_login()

    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Extract")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
