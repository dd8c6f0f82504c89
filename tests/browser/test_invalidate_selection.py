"""Invalidate from where you are: filter the Entries list, invalidate what it shows."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from extractor.caching.defaults import default_backend
from extractor.models import Entry, Invalidation
from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.browser

USER_DETAIL = "extractor.extraction:extract_UserDetail"


def test_the_filtered_list_is_invalidated_and_nothing_else(staff_login, live_server):
    version = SchemaVersionFactory(number=1)
    CachedFunctionFactory(name=USER_DETAIL, schema_version=version)
    minis = EntryFactory.create_batch(2, schema_version=version, llm_model="gpt-4o-mini")
    large = EntryFactory(schema_version=version, llm_model="gpt-4o")
    for entry in [*minis, large]:
        default_backend().set(entry.key, "{}")
    page = staff_login()

    page.goto(f"{live_server.url}/entries/")
    page.get_by_label("LLM model").select_option("gpt-4o-mini")
    expect(page).to_have_url(re.compile(r"model=gpt-4o-mini"))
    page.get_by_test_id("invalidate-selection").click()

    expect(page.get_by_test_id("confirm-count")).to_have_text(
        "This will invalidate 2 entries, what the filtered Entries list shows: "
        "live entries from model gpt-4o-mini."
    )
    page.get_by_role("button", name="Invalidate 2 entries").click()

    expect(page).to_have_url(re.compile(r"/invalidations/\d+/$"))
    expect(page.locator(".messages")).to_contain_text(
        "Invalidated 2 entries of the filtered list (live entries from model gpt-4o-mini)."
    )
    invalidation = Invalidation.objects.get()
    assert (invalidation.action, invalidation.removed) == ("selection", 2)
    statuses = Entry.objects.filter(pk__in=[m.pk for m in minis]).values_list("status", flat=True)
    assert set(statuses) == {Entry.Status.INVALIDATED}
    assert Entry.objects.get(pk=large.pk).status == Entry.Status.LIVE
    assert default_backend().get(large.key) is not None
    assert all(default_backend().get(entry.key) is None for entry in minis)
    # The target links back to the list it came from.
    page.get_by_role("link", name=re.compile("live entries from model gpt-4o-mini")).click()
    expect(page).to_have_url(re.compile(r"/entries/\?model=gpt-4o-mini"))
    expect(page.get_by_test_id("count")).to_contain_text("0 entries")
