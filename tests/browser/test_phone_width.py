"""At a phone's width (390 px) no page scrolls sideways: wide tables scroll inside their
own boxes instead."""

from __future__ import annotations

import pytest

from extractor.models import Call
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_the_entry_page_fits_a_phone_width(staff_login, live_server):
    call = CallFactory(outcome=Call.Outcome.MISS, miss_reason=Call.MissReason.SCHEMA_CHANGED)
    CallFactory(entry=call.entry)
    # An older value of the same question, for the history table.
    EntryFactory(input_fingerprint=call.entry.input_fingerprint, arguments=call.entry.arguments)
    page = staff_login()
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/entries/{call.entry.pk}/")

    assert page.get_by_test_id("history").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/extract/",
        "/entries/",
        "/calls/",
        "/documents/",
        "/schemas/",
        "/invalidate/",
        "/invalidate/?action=selection&target=state%3Dlive",
        "/invalidations/",
    ],
)
def test_every_page_fits_a_phone_width_under_a_two_row_header(staff_login, live_server, path):
    entry = EntryFactory(function="a_rather_long_module.with_submodules:extract_a_long_name")
    CallFactory(entry=entry)
    page = staff_login()
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}{path}")

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width} px wide"
    header = page.locator("header.topbar").bounding_box()
    assert header is not None
    # The brand and "Log out" on one row, the page links on the other (they scroll
    # sideways inside their own row when they do not fit).
    assert header["height"] <= 100, f"the header is {header['height']:.0f} px tall"
    assert page.get_by_role("navigation", name="Main").get_by_role("link").count() == 7
