"""Small page actions the browser tests share."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

MODEL = "openai/gpt-4o-mini"


def extract(page: Page, base_url: str, text: str, *, schema: str = "UserDetail") -> Locator:
    """Fill and submit the Extract form; return the result region once it has an outcome.

    Goes to /extract/ only when the page is elsewhere, so two submissions in a row
    exercise the htmx swap of the form and result together.
    """
    if not page.url.startswith(f"{base_url}/extract/"):
        page.goto(f"{base_url}/extract/")
    result = page.locator("#extract-result")
    page.locator("#id_text").fill(text)
    page.get_by_label("Schema").select_option(schema)
    page.get_by_label("LLM model").select_option(MODEL)
    # Mark the current result so the wait below is for the new one, not the old one.
    page.evaluate("document.getElementById('extract-result').dataset.old = 'yes'")
    page.get_by_role("button", name="Extract").click()
    expect(result).not_to_have_attribute("data-old", "yes")
    expect(result.get_by_test_id("outcome")).to_be_visible()
    return result


def mark_document(page: Page) -> None:
    """Tag the live document; still tagged later means htmx swapped, no full load."""
    page.evaluate("window.__sameDocument = true")


def assert_same_document(page: Page) -> None:
    assert page.evaluate("window.__sameDocument") is True, "the page was fully reloaded"


def entry_pk(page: Page) -> int:
    match = re.search(r"/entries/(\d+)/$", page.url)
    assert match, f"not on an entry page: {page.url}"
    return int(match.group(1))


def entry_row(page: Page, pk: int) -> Locator:
    """The entries list's row for entry `pk`."""
    return page.get_by_test_id("entry-row").filter(has=page.locator(f'a[href="/entries/{pk}/"]'))


def entry_link(page: Page, pk: int) -> Locator:
    """The link to entry `pk` in its row of the entries list."""
    return entry_row(page, pk).get_by_role("link", name=re.compile("^[0-9a-f]{12}$"))
