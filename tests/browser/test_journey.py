"""The issue's whole journey in Chromium: log in, extract twice (miss, then hit), open the
entry, replay it, replace the value, invalidate its schema version and see it leave the
live list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import (
    assert_same_document,
    entry_link,
    entry_pk,
    entry_row,
    extract,
    mark_document,
)

pytestmark = pytest.mark.browser

TEXT = "Jason is 25 years old."
CACHED = {"name": "Jason", "age": 25}
FRESH = {"name": "Jason", "age": 26}


def test_extract_replay_replace_and_invalidate(staff_login, live_server, fake_llm):
    base = live_server.url
    page = staff_login()
    fake_llm.answer_with(CACHED)

    # 1. A miss, then a hit, both swapped in by htmx without leaving the page.
    page.goto(f"{base}/extract/")
    mark_document(page)
    result = extract(page, base, TEXT)
    expect(result.get_by_test_id("outcome")).to_have_text("Miss")
    expect(result).to_contain_text("New input")
    expect(result.get_by_test_id("output")).to_contain_text('"age": 25')
    key = result.locator("dt:text-is('Key') + dd code").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", key), key
    assert fake_llm.count == 1

    result = extract(page, base, TEXT)
    expect(result.get_by_test_id("outcome")).to_have_text("Hit")
    expect(result.get_by_test_id("output")).to_contain_text('"name": "Jason"')
    expect(result.locator("dt:text-is('Key') + dd code")).to_have_text(key)
    assert fake_llm.count == 1, "the hit called the LLM"
    assert_same_document(page)
    expect(page).to_have_url(f"{base}/extract/")

    # 2. The entry: arguments, output, key components and both calls.
    result.get_by_role("link", name="Open the cache entry →").click()
    expect(page).to_have_url(re.compile(r"/entries/\d+/$"))
    original = entry_pk(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(key[:12])
    expect(page.get_by_role("heading", level=1).get_by_test_id("status")).to_have_text("Live")
    expect(page.get_by_test_id("arguments")).to_contain_text(TEXT)
    expect(page.get_by_test_id("arguments")).to_contain_text('"model": "gpt-4o-mini"')
    expect(page.get_by_test_id("output")).to_contain_text('"age": 25')
    components = page.get_by_test_id("key-components")
    expect(components).to_contain_text(key)
    expect(components).to_contain_text("extractor.extraction:extract_UserDetail")
    expect(components).to_contain_text("extractor.schemas.UserDetail v1")
    calls = page.get_by_test_id("calls").locator("tbody tr")
    expect(calls).to_have_count(2)
    expect(calls.nth(0)).to_contain_text("Hit")  # newest first
    expect(calls.nth(1)).to_contain_text("Miss")
    expect(calls.nth(1).get_by_test_id("miss-reason")).to_contain_text("New input")

    # 3. Replay against a provider that now answers differently; replace the value.
    fake_llm.answer_with(FRESH)
    page.get_by_role("button", name="Replay").click()
    expect(page).to_have_url(re.compile(r"/replays/\d+/$"))
    assert fake_llm.count == 2, "a replay is exactly one LLM call"
    expect(page.get_by_test_id("summary")).to_contain_text("1 field changed")
    diff = page.get_by_test_id("diff")
    age = diff.locator("tbody tr").filter(has=page.locator("code", has_text=re.compile("^age$")))
    expect(age).to_have_class("changed")
    expect(age.locator("td")).to_have_text(["age", "25", "26", "changed"])
    name = diff.locator("tbody tr").filter(has=page.locator("code", has_text=re.compile("^name$")))
    expect(name).to_have_class("same")
    page.get_by_role("button", name="Replace with the fresh output").click()

    expect(page).to_have_url(re.compile(r"/entries/\d+/$"))
    replacement = entry_pk(page)
    assert replacement != original
    expect(page.get_by_text("The fresh output is now the cached value")).to_be_visible()
    expect(page.get_by_test_id("output")).to_contain_text('"age": 26')
    expect(page.get_by_role("heading", level=1).get_by_test_id("status")).to_have_text("Live")
    assert fake_llm.count == 2, "replacing stores the replay's output without a new call"

    page.goto(f"{base}/entries/{original}/")
    expect(page.get_by_test_id("replaced")).to_contain_text("Replaced")
    expect(page.get_by_test_id("replaced").get_by_role("link")).to_have_attribute(
        "href", f"/entries/{replacement}/"
    )

    # The cache now serves the fresh value.
    result = extract(page, base, TEXT)
    expect(result.get_by_test_id("outcome")).to_have_text("Hit")
    expect(result.get_by_test_id("output")).to_contain_text('"age": 26')
    assert fake_llm.count == 2

    # 4. Invalidate the schema version from the Schemas page.
    page.goto(f"{base}/entries/")
    expect(entry_link(page, replacement)).to_be_visible()
    expect(entry_link(page, original)).to_have_count(0)  # replaced: not live

    page.goto(f"{base}/schemas/")
    card = page.get_by_role("region", name=re.compile("UserDetail"))
    card.get_by_role("link", name="Invalidate this version").click()
    expect(page).to_have_url(re.compile(r"/invalidate/\?action=schema_version&target=\d+$"))
    expect(page.get_by_test_id("confirm-count")).to_contain_text(
        "This will invalidate 1 live entry of"
    )
    page.get_by_role("button", name="Invalidate 1 entry").click()

    expect(page).to_have_url(re.compile(r"/invalidations/\d+/$"))
    expect(page.get_by_test_id("status")).to_have_text("Done")
    expect(page.get_by_test_id("matched")).to_have_text("1")
    expect(page.get_by_test_id("removed")).to_have_text("1")

    # Gone from the live list; listed under "Invalidated", chosen in place.
    page.goto(f"{base}/entries/")
    expect(page.get_by_test_id("count")).to_contain_text("0 entries, live only")
    expect(entry_link(page, replacement)).to_have_count(0)
    mark_document(page)
    page.get_by_label("Show").select_option(label="Invalidated")
    expect(page).to_have_url(re.compile(r"[?&]state=invalidated"))
    expect(entry_link(page, replacement)).to_be_visible()
    expect(entry_row(page, replacement).get_by_test_id("status")).to_have_text("Invalidated")
    assert_same_document(page)

    entry_link(page, replacement).click()
    expect(page.get_by_test_id("invalidated")).to_contain_text("Invalidated")
    expect(page.get_by_role("link", name="Invalidate…")).to_have_count(0)

    # The next extraction of the same text asks the LLM again.
    result = extract(page, base, TEXT)
    expect(result.get_by_test_id("outcome")).to_have_text("Miss")
    expect(result).to_contain_text("Invalidated")
    assert fake_llm.count == 3
