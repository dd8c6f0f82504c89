"""At a phone's width (390 px) the entry page does not scroll sideways: its wide calls
and history tables scroll inside their own boxes instead."""

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
