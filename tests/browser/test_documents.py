"""The Documents page and a document's page in a real browser: they render their figures,
and at a phone's width (390 px) the page never scrolls sideways."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from extractor.models import Call
from tests.factories import CallFactory, DocumentFactory, EntryFactory

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def document(settings):
    settings.EXTRACTOR_PRICES = {"model-a": (1.0, 0.1, 1.25, 2.0, 2.0)}
    document = DocumentFactory(name="a-long-lease-agreement-between-two-parties-2026.txt")
    for question, read, write in (("Who is the tenant?", 0, 2000), ("What is the rent?", 2000, 0)):
        entry = EntryFactory(
            document_sha=document.sha256,
            llm_model="model-a",
            input_preview=question,
            prompt_tokens=100 + read + write,
            cached_prompt_tokens=read,
            cache_write_tokens=write,
        )
        CallFactory(
            entry=entry,
            outcome=Call.Outcome.MISS,
            document_sha=document.sha256,
            input_preview=question,
            prompt_tokens=entry.prompt_tokens,
            cached_prompt_tokens=read,
            cache_write_tokens=write,
        )
    return document


def test_the_documents_pages_render_and_fit_a_phone_width(staff_login, live_server, document):
    page = staff_login()
    page.set_viewport_size(PHONE)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Documents").click()
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    expect(page.get_by_test_id("document-row")).to_have_count(1)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Documents page is {width} px wide"

    page.get_by_role("link", name=document.name).click()
    expect(page.get_by_test_id("read-tokens")).to_have_text("2,000 tokens")
    expect(page.get_by_test_id("prompt-hit-rate")).to_contain_text("50.0%")
    expect(page.get_by_test_id("document-entry")).to_have_count(2)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the document's page is {width} px wide"
