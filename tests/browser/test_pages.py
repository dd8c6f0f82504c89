"""Focused browser checks: keeping a cached value, invalidating one entry, escaping,
the entries list's in-place filtering, and reading the pages without JavaScript."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.helpers import (
    assert_same_document,
    entry_link,
    entry_pk,
    entry_row,
    extract,
    mark_document,
)
from tests.factories import EntryFactory

pytestmark = pytest.mark.browser


def test_keeping_the_cached_value_after_a_replay_changes_nothing(
    staff_login, live_server, fake_llm
):
    base = live_server.url
    page = staff_login()
    fake_llm.answer_with({"name": "Ada", "age": 36})
    extract(page, base, "Ada is 36.").get_by_role("link", name="Open the cache entry →").click()
    pk = entry_pk(page)

    fake_llm.answer_with({"name": "Ada Lovelace", "age": 36})
    page.get_by_role("button", name="Replay").click()
    expect(page).to_have_url(re.compile(r"/replays/\d+/$"))
    expect(page.get_by_test_id("summary")).to_contain_text("1 field changed")
    name = page.get_by_test_id("diff").locator("tbody tr.changed")
    expect(name.locator("td")).to_have_text(["name", '"Ada"', '"Ada Lovelace"', "changed"])
    assert fake_llm.count == 2

    page.get_by_test_id("choices").get_by_role("button", name="Keep the cached value").click()
    expect(page).to_have_url(f"{base}/entries/{pk}/")
    expect(page.locator(".messages")).to_contain_text(
        f"Kept the cached value of entry #{pk}; the replay's output was discarded."
    )
    expect(page.get_by_test_id("output")).to_contain_text('"name": "Ada"')
    expect(page.get_by_test_id("output")).not_to_contain_text("Lovelace")
    expect(page.get_by_role("heading", level=1).get_by_test_id("status")).to_have_text("Live")
    expect(page.get_by_role("link", name=re.compile(r"^Replay "))).to_have_count(1)
    expect(page.get_by_text("accepted", exact=True)).to_have_count(0)
    # The replay shows in the calls as a call of its own, and did not touch the cache.
    expect(page.get_by_test_id("calls").locator("tbody tr").first).to_contain_text("Replay")

    result = extract(page, base, "Ada is 36.")
    expect(result.get_by_test_id("outcome")).to_have_text("Hit")
    expect(result.get_by_test_id("output")).not_to_contain_text("Lovelace")
    assert fake_llm.count == 2


def test_invalidating_one_entry_from_its_page_leaves_the_others_live(
    staff_login, live_server, fake_llm
):
    base = live_server.url
    page = staff_login()
    extract(page, base, "Kept is 40.").get_by_role("link", name="Open the cache entry →").click()
    kept = entry_pk(page)
    extract(page, base, "Dropped is 41.").get_by_role("link", name="Open the cache entry →").click()
    dropped = entry_pk(page)

    page.get_by_role("link", name="Invalidate…").click()
    expect(page).to_have_url(f"{base}/invalidate/?action=entry&target={dropped}")
    expect(page.get_by_test_id("confirm-count")).to_contain_text(
        "This will invalidate 1 live entry"
    )
    page.get_by_role("button", name="Invalidate 1 entry").click()
    expect(page.get_by_test_id("status")).to_have_text("Done")
    expect(page.get_by_role("link", name=f"entry #{dropped}")).to_be_visible()

    page.goto(f"{base}/entries/")
    expect(page.get_by_test_id("count")).to_contain_text("1 entry, live only")
    expect(entry_link(page, kept)).to_be_visible()
    expect(entry_link(page, dropped)).to_have_count(0)

    page.goto(f"{base}/entries/{dropped}/")
    expect(page.get_by_test_id("invalidated")).to_contain_text("by grace")
    # Going back to the confirmation now finds nothing left to do.
    page.goto(f"{base}/invalidate/?action=entry&target={dropped}")
    expect(page.get_by_test_id("confirm-count")).to_contain_text("Nothing to invalidate")
    expect(page.get_by_role("button", name=re.compile("^Invalidate"))).to_have_count(0)


def test_text_and_output_from_outside_are_shown_as_text_never_run(
    staff_login, live_server, fake_llm
):
    base = live_server.url
    page = staff_login()
    script = "<script>window.__xss = 1</script>"
    text = '<img src=x onerror="window.__xss = 2">Tom is 3'
    fake_llm.answer_with({"name": script, "age": 3})

    result = extract(page, base, text)
    expect(result.get_by_test_id("outcome")).to_have_text("Miss")
    expect(result.get_by_test_id("output")).to_contain_text(script)
    assert page.evaluate("window.__xss") is None

    result.get_by_role("link", name="Open the cache entry →").click()
    pk = entry_pk(page)
    expect(page.get_by_test_id("output")).to_contain_text(script)
    expect(page.get_by_test_id("arguments")).to_contain_text('<img src=x onerror=\\"window.__xss')
    expect(page.get_by_text("<script>", exact=False).first).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main script").count() == 0

    page.goto(f"{base}/entries/")
    expect(entry_row(page, pk)).to_contain_text("<img src=x")
    expect(entry_row(page, pk)).to_contain_text("<script>")
    assert page.evaluate("window.__xss") is None

    page.goto(f"{base}/entries/{pk}/")
    page.get_by_role("button", name="Replay").click()
    expect(page).to_have_url(re.compile(r"/replays/\d+/$"))
    expect(page.get_by_test_id("summary")).to_contain_text("Identical")
    expect(page.get_by_test_id("diff")).to_contain_text(script)
    assert page.evaluate("window.__xss") is None


def test_entries_search_and_sort_update_the_results_in_place_and_the_url(staff_login, live_server):
    base = live_server.url
    ada = EntryFactory(
        arguments={"text": "Ada is 36", "model": "gpt-4o-mini"}, output={"name": "Ada"}, hit_count=1
    )
    grace = EntryFactory(
        arguments={"text": "Grace is 85", "model": "gpt-4o-mini"},
        output={"name": "Grace"},
        hit_count=9,
    )
    page = staff_login()
    page.goto(f"{base}/entries/")
    expect(page.get_by_test_id("entry-row")).to_have_count(2)
    mark_document(page)

    # Typed key by key, as a person does: the search runs once the typing pauses.
    page.get_by_role("searchbox", name="Search").press_sequentially("Grace")
    expect(page).to_have_url(re.compile(r"[?&]q=Grace(&|$)"))
    expect(page.get_by_test_id("count")).to_contain_text("1 entry, live only")
    expect(entry_link(page, grace.pk)).to_be_visible()
    expect(entry_link(page, ada.pk)).to_have_count(0)

    # Clearing loads the whole page, so the form empties along with the results.
    page.get_by_role("link", name="clear the filters").click()
    expect(page).to_have_url(f"{base}/entries/")
    expect(page.get_by_test_id("entry-row")).to_have_count(2)
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("")
    mark_document(page)

    page.get_by_role("link", name="Hits", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]sort=-hit_count(&|$)"))
    rows = page.get_by_test_id("entry-row")
    expect(rows.first).to_contain_text("Grace")
    expect(rows.last).to_contain_text("Ada")
    expect(page.get_by_role("columnheader", name="Hits ↓")).to_be_visible()
    assert_same_document(page)

    page.go_back()
    expect(page).to_have_url(f"{base}/entries/")
    expect(page.get_by_test_id("entry-row")).to_have_count(2)


def test_the_pages_read_and_the_forms_work_without_javascript(
    staff_user, live_server, fake_llm, no_js_page
):
    base = live_server.url
    page = log_in(no_js_page, base)
    fake_llm.answer_with({"name": "Linus", "age": 54})

    # The Extract form posts as a plain form and the whole page comes back.
    page.goto(f"{base}/extract/")
    page.locator("#id_text").fill("Linus is 54.")
    page.get_by_role("button", name="Extract").click()
    expect(page.get_by_test_id("outcome")).to_have_text("Miss")
    expect(page.get_by_test_id("output")).to_contain_text('"name": "Linus"')
    assert fake_llm.count == 1
    fake_llm.answer_with({"name": "Someone", "age": 20})
    page.locator("#id_text").fill("Someone else is 20.")
    page.get_by_role("button", name="Extract").click()
    expect(page.get_by_test_id("output")).to_contain_text('"name": "Someone"')
    assert fake_llm.count == 2

    page.goto(f"{base}/entries/")
    expect(page.get_by_test_id("entry-row")).to_have_count(2)
    page.get_by_role("searchbox", name="Search").fill("Linus")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]q=Linus(&|$)"))
    expect(page.get_by_test_id("entry-row")).to_have_count(1)

    page.get_by_test_id("entry-row").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/entries/\d+/$"))
    expect(page.get_by_test_id("arguments")).to_contain_text("Linus is 54.")
    expect(page.get_by_test_id("output")).to_contain_text('"age": 54')
    expect(page.get_by_test_id("calls").locator("tbody tr")).to_have_count(1)

    # Replay is a plain form too: without htmx the server answers with a redirect.
    fake_llm.answer_with({"name": "Linus", "age": 55})
    page.get_by_role("button", name="Replay").click()
    expect(page).to_have_url(re.compile(r"/replays/\d+/$"))
    expect(page.get_by_test_id("summary")).to_contain_text("1 field changed")
    assert fake_llm.count == 3


def test_an_empty_text_is_refused_in_place_without_calling_the_llm(
    staff_login, live_server, fake_llm
):
    page = staff_login()
    page.goto(f"{live_server.url}/extract/")
    mark_document(page)
    page.get_by_role("button", name="Extract").click()
    # The browser's own required-field check stops an empty submit: nothing is sent.
    assert page.locator("#id_text").evaluate("el => el.validity.valueMissing") is True
    page.locator("#id_text").fill("   ")
    page.get_by_role("button", name="Extract").click()
    expect(page.get_by_role("alert")).to_have_text("Enter some text to extract from.")
    expect(page.get_by_test_id("outcome")).to_have_count(0)
    assert_same_document(page)
    assert fake_llm.count == 0


def test_an_entrys_calls_page_in_place_and_the_url_follows(staff_login, live_server):
    from extractor.models import Call

    entry = EntryFactory()
    Call.objects.bulk_create(
        Call(entry=entry, key=entry.key, function=entry.function, outcome="hit", latency_ms=i)
        for i in range(150)
    )
    page = staff_login()
    page.goto(f"{live_server.url}/entries/{entry.pk}/")
    mark_document(page)

    page.get_by_role("link", name="Older →").click()

    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    expect(page.locator("h1")).to_have_count(1)
    assert page.get_by_test_id("calls").locator("tbody tr").count() == 50
    assert_same_document(page)
