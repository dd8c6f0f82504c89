"""The invalidate page offers what exists to choose from, and fits a phone's width."""

from __future__ import annotations

import os

import pytest

from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_a_schema_version_chosen_from_the_list_is_counted(staff_login, live_server):
    v1 = SchemaVersionFactory(number=1)
    CachedFunctionFactory(schema_version=v1)
    CachedFunctionFactory(name="a.rather.long.module.path.of.another:extract_UserDetail")
    EntryFactory.create_batch(2, schema_version=v1)
    page = staff_login()
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/invalidate/")
    if shots := os.environ.get("SCREENSHOTS"):
        page.screenshot(path=f"{shots}/invalidate-390.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"
    page.get_by_test_id("choose-schema_version").select_option(label="UserDetail v1")
    page.get_by_test_id("choose-schema_version").locator("xpath=../..").get_by_role(
        "button"
    ).click()

    assert page.url.endswith(f"/invalidate/?action=schema_version&target={v1.pk}")
    assert "This will invalidate 2 live entries of schema UserDetail v1." in (
        page.get_by_test_id("confirm-count").inner_text()
    )
