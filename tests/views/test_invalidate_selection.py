"""Invalidate from where you are: the filtered Entries list is the target, the confirm
page repeats the filter and the count, and only what the filter selects is dropped."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from extractor.caching.defaults import default_backend
from extractor.models import Entry, Invalidation
from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

ENTRIES = reverse("extractor:entries")
CONFIRM = reverse("extractor:invalidate")
USER_DETAIL = "extractor.extraction:extract_UserDetail"
CHARACTER = "extractor.extraction:extract_Character"


@pytest.fixture
def rows():
    """Two functions, two models; one stale entry; each value stored in the backend."""
    v1 = SchemaVersionFactory(number=1)
    v2 = SchemaVersionFactory(number=2)
    CachedFunctionFactory(name=USER_DETAIL, schema_version=v2)
    rows = {
        "mini": EntryFactory(function=USER_DETAIL, schema_version=v2, llm_model="gpt-4o-mini"),
        "mini_jason": EntryFactory(
            function=USER_DETAIL,
            schema_version=v2,
            llm_model="gpt-4o-mini",
            input_preview="Jason is 25",
        ),
        "big": EntryFactory(function=USER_DETAIL, schema_version=v2, llm_model="gpt-4o"),
        "stale": EntryFactory(function=USER_DETAIL, schema_version=v1, llm_model="gpt-4o-mini"),
        "other_function": EntryFactory(function=CHARACTER, llm_model="gpt-4o-mini"),
    }
    for row in rows.values():
        default_backend().set(row.key, "{}")
    return rows


def invalidate_link(html: str) -> str:
    anchor = html.split('data-testid="invalidate-selection"')[1]
    return anchor.split('href="')[1].split('"')[0].replace("&amp;", "&")


def test_the_filtered_list_offers_to_invalidate_what_it_shows(staff_client, rows):
    html = staff_client.get(ENTRIES, {"function": USER_DETAIL, "model": "gpt-4o-mini"}).content
    link = invalidate_link(html.decode())

    assert link.startswith(CONFIRM + "?")
    params = parse_qs(urlsplit(link).query)
    assert params["action"] == ["selection"]
    target = parse_qs(params["target"][0])
    assert target == {"function": [USER_DETAIL], "model": ["gpt-4o-mini"], "state": ["live"]}
    assert "Invalidate these 2 entries" in html.decode()


def test_the_confirm_page_repeats_the_filter_and_counts_it(staff_client, rows):
    html = staff_client.get(ENTRIES, {"function": USER_DETAIL, "model": "gpt-4o-mini"}).content

    response = staff_client.get(invalidate_link(html.decode()))

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["count"].value == 2
    assert (
        "This will invalidate <strong>2</strong> entries, what the filtered Entries list shows: "
        "live entries of extract_UserDetail, from model gpt-4o-mini." in page
    )
    assert 'data-testid="selection-note"' in page


def test_confirming_drops_only_the_selected_values(staff_client, staff_user, rows):
    query = {"function": USER_DETAIL, "model": "gpt-4o-mini", "q": "Jason"}
    link = invalidate_link(staff_client.get(ENTRIES, query).content.decode())
    target = parse_qs(urlsplit(link).query)["target"][0]

    response = staff_client.post(CONFIRM, {"action": "selection", "target": target})

    invalidation = Invalidation.objects.get()
    assert response.status_code == 302
    assert (invalidation.action, invalidation.matched, invalidation.removed) == ("selection", 1, 1)
    assert invalidation.requested_by == staff_user
    statuses = dict(Entry.objects.values_list("pk", "status"))
    assert statuses.pop(rows["mini_jason"].pk) == Entry.Status.INVALIDATED
    assert set(statuses.values()) == {Entry.Status.LIVE}
    assert default_backend().get(rows["mini_jason"].key) is None
    assert default_backend().get(rows["mini"].key) is not None


def test_the_stale_selection_invalidates_the_stale_entries_it_shows(staff_client, rows):
    link = invalidate_link(staff_client.get(ENTRIES, {"state": "stale"}).content.decode())
    target = parse_qs(urlsplit(link).query)["target"][0]

    staff_client.post(CONFIRM, {"action": "selection", "target": target})

    invalidated = Entry.objects.filter(status=Entry.Status.INVALIDATED)
    assert list(invalidated.values_list("pk", flat=True)) == [rows["stale"].pk]


def test_an_invalidated_list_offers_no_invalidation(staff_client, rows):
    html = staff_client.get(ENTRIES, {"state": "invalidated"}).content.decode()

    assert 'data-testid="invalidate-selection"' not in html


def test_a_selection_that_cannot_be_read_is_refused(staff_client, rows):
    response = staff_client.post(
        CONFIRM, {"action": "selection", "target": "function=nope:nothing&state=live"}
    )

    assert response.status_code == 400
    assert "The Entries filters cannot be read" in response.content.decode()
    assert not Invalidation.objects.exists()


def test_the_history_names_the_selection_and_links_back_to_it(staff_client, rows):
    target = f"function={USER_DETAIL}&model=gpt-4o&state=live"
    staff_client.post(CONFIRM, {"action": "selection", "target": target})

    html = staff_client.get(reverse("extractor:invalidations")).content.decode()

    assert "live entries of extract_UserDetail, from model gpt-4o" in html
    assert f'href="{ENTRIES}?function=' in html
