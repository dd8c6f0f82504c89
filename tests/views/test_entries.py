"""The entries list: filters, search, sort, pagination, status badges, htmx and access."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from extractor.models import Entry
from tests.factories import (
    CachedFunctionFactory,
    EntryFactory,
    InvalidationFactory,
    SchemaVersionFactory,
)

pytestmark = pytest.mark.django_db

URL = reverse("extractor:entries")


def listed(response) -> list[int]:
    assert response.status_code == 200
    return [entry.pk for entry in response.context["page"].object_list]


def test_the_list_shows_each_entry_with_its_facts_and_a_detail_link(staff_client):
    version = SchemaVersionFactory(name="extractor.schemas.UserDetail", number=2)
    entry = EntryFactory(
        schema_version=version,
        arguments={"text": "Jason is 25 years old", "model": "gpt-4o-mini"},
        input_preview="Jason is 25 years old · gpt-4o-mini",
        hit_count=7,
        last_hit_at=timezone.now(),
    )

    response = staff_client.get(URL)

    html = response.content.decode()
    assert listed(response) == [entry.pk]
    assert reverse("extractor:entry", args=[entry.pk]) in html
    assert entry.key[:12] in html
    assert "extract_UserDetail" in html
    assert "UserDetail v2" in html
    assert "gpt-4o-mini" in html
    assert "Jason is 25 years old" in html
    assert 'data-testid="status" title="Served to callers from the cache.">Live<' in html
    assert '<p class="lead">' in html


def test_an_empty_cache_says_how_entries_appear(staff_client):
    html = staff_client.get(URL).content.decode()

    assert "Nothing is cached yet." in html
    assert reverse("extractor:extract") in html


def test_filters_that_match_nothing_say_so_and_offer_to_clear_them(staff_client):
    EntryFactory()

    html = staff_client.get(URL, {"q": "no such text anywhere"}).content.decode()

    assert "No entries match these filters." in html
    assert "Clear the filters" in html


def test_filter_by_function(staff_client):
    wanted = EntryFactory(function="app.people:extract_person")
    EntryFactory(function="app.books:extract_book")

    assert listed(staff_client.get(URL, {"function": "app.people:extract_person"})) == [wanted.pk]


def test_function_choices_come_from_cached_functions_and_entries(staff_client):
    CachedFunctionFactory(name="app.people:extract_person")
    EntryFactory(function="app.books:extract_book")

    choices = dict(staff_client.get(URL).context["form"].fields["function"].choices)

    assert choices["app.people:extract_person"] == "extract_person"
    assert choices["app.books:extract_book"] == "extract_book"


def test_filter_by_schema_name_and_by_schema_version(staff_client):
    v1 = SchemaVersionFactory(name="extractor.schemas.UserDetail", number=1)
    v2 = SchemaVersionFactory(name="extractor.schemas.UserDetail", number=2)
    character = SchemaVersionFactory(name="extractor.schemas.Character", number=1)
    old, new = EntryFactory(schema_version=v1), EntryFactory(schema_version=v2)
    EntryFactory(schema_version=character)

    by_name = staff_client.get(URL, {"schema": "extractor.schemas.UserDetail"})
    by_version = staff_client.get(URL, {"schema_version": v2.pk})

    assert sorted(listed(by_name)) == sorted([old.pk, new.pk])
    assert listed(by_version) == [new.pk]
    version_choices = by_version.context["form"].fields["schema_version"].choices
    assert "UserDetail v2" in dict(version_choices).values()


def test_filter_by_llm_model(staff_client):
    EntryFactory(llm_model="gpt-4o-mini")
    wanted = EntryFactory(llm_model="gpt-4.1")

    response = staff_client.get(URL, {"model": "gpt-4.1"})

    assert listed(response) == [wanted.pk]
    assert set(dict(response.context["form"].fields["model"].choices)) == {
        "",
        "gpt-4o-mini",
        "gpt-4.1",
    }


def test_search_matches_input_and_output_text(staff_client):
    by_input = EntryFactory(
        arguments={"text": "Marguerite lives in Lyon", "model": "gpt-4o-mini"},
        input_preview="Marguerite lives in Lyon · gpt-4o-mini",
    )
    by_output = EntryFactory(output={"name": "Zanzibar Quinn", "age": 40})
    EntryFactory()

    assert listed(staff_client.get(URL, {"q": "marguerite"})) == [by_input.pk]
    assert listed(staff_client.get(URL, {"q": "Zanzibar"})) == [by_output.pk]


def test_search_finds_a_key_by_its_prefix(staff_client):
    entry = EntryFactory()
    EntryFactory()

    assert listed(staff_client.get(URL, {"q": entry.key[:10]})) == [entry.pk]


def test_sort_by_hits_last_hit_and_created(staff_client):
    now = timezone.now()
    busy = EntryFactory(
        hit_count=50, last_hit_at=now - dt.timedelta(days=2), created_at=now - dt.timedelta(days=9)
    )
    recent = EntryFactory(hit_count=3, last_hit_at=now, created_at=now - dt.timedelta(days=5))
    never = EntryFactory(hit_count=0, last_hit_at=None, created_at=now - dt.timedelta(days=1))

    assert listed(staff_client.get(URL, {"sort": "-hit_count"})) == [busy.pk, recent.pk, never.pk]
    assert listed(staff_client.get(URL, {"sort": "-last_hit_at"}))[:2] == [recent.pk, busy.pk]
    assert listed(staff_client.get(URL, {"sort": "-created_at"})) == [never.pk, recent.pk, busy.pk]
    assert listed(staff_client.get(URL, {"sort": "created_at"})) == [busy.pk, recent.pk, never.pk]


def test_the_default_shows_live_entries_only(staff_client):
    live = EntryFactory()
    EntryFactory(status=Entry.Status.REPLACED)
    EntryFactory(status=Entry.Status.INVALIDATED)
    EntryFactory(expires_at=timezone.now() - dt.timedelta(minutes=1))

    response = staff_client.get(URL)

    assert listed(response) == [live.pk]
    assert "live only" in response.content.decode()


def test_state_filters_and_their_badges(staff_client):
    live = EntryFactory()
    replaced = EntryFactory(status=Entry.Status.REPLACED)
    invalidated = EntryFactory(status=Entry.Status.INVALIDATED, invalidation=InvalidationFactory())
    expired = EntryFactory(expires_at=timezone.now() - dt.timedelta(minutes=1))

    assert listed(staff_client.get(URL, {"state": "replaced"})) == [replaced.pk]
    assert listed(staff_client.get(URL, {"state": "invalidated"})) == [invalidated.pk]
    assert listed(staff_client.get(URL, {"state": "expired"})) == [expired.pk]
    everything = staff_client.get(URL, {"state": "all"})
    assert sorted(listed(everything)) == sorted([live.pk, replaced.pk, invalidated.pk, expired.pk])
    html = everything.content.decode()
    for label in ("Live", "Replaced", "Invalidated", "Expired"):
        assert f">{label}</span>" in html


def test_a_stale_badge_when_the_functions_code_fingerprint_changed(staff_client):
    entry = EntryFactory()
    CachedFunctionFactory(
        name=entry.function, schema_version=entry.schema_version, code_fingerprint="f" * 64
    )

    stale = staff_client.get(URL, {"state": "stale"})
    live = staff_client.get(URL)

    assert listed(stale) == [entry.pk]
    assert 'class="badge stale" data-testid="status"' in stale.content.decode()
    assert listed(live) == []
    assert "No live entries." in live.content.decode()


def test_a_stale_badge_when_the_function_has_a_newer_schema_version(staff_client):
    entry = EntryFactory()
    CachedFunctionFactory(
        name=entry.function,
        schema_version=SchemaVersionFactory(),
        code_fingerprint=entry.code_fingerprint,
    )

    html = staff_client.get(URL, {"state": "all"}).content.decode()

    assert 'class="badge stale" data-testid="status"' in html


def test_no_stale_badge_when_the_entry_is_current(staff_client):
    entry = EntryFactory()
    CachedFunctionFactory(
        name=entry.function,
        schema_version=entry.schema_version,
        code_fingerprint=entry.code_fingerprint,
    )

    response = staff_client.get(URL)

    assert listed(response) == [entry.pk]
    assert 'class="badge stale" data-testid' not in response.content.decode()


def oldest_first(count: int) -> list[Entry]:
    """`count` entries created a minute apart, the last the newest."""
    start = timezone.now() - dt.timedelta(days=1)
    return [EntryFactory(created_at=start + dt.timedelta(minutes=n)) for n in range(count)]


def test_pages_of_fifty_go_by_cursor_links_that_keep_the_filters(staff_client):
    entries = oldest_first(51)

    first = staff_client.get(URL, {"sort": "-created_at"})
    cursor = first.context["page"].next_cursor
    second = staff_client.get(URL, {"sort": "-created_at", "after": cursor})

    assert listed(first) == [entry.pk for entry in entries[:0:-1]]
    assert listed(second) == [entries[0].pk]
    html = first.content.decode()
    assert f'href="?after={cursor}&amp;sort=-created_at"' in html
    assert f'hx-get="?after={cursor}&amp;sort=-created_at" rel="next"' in html
    assert 'rel="prev"' not in html
    back = second.context["page"].previous_cursor
    assert f'href="?before={back}&amp;sort=-created_at"' in second.content.decode()
    assert listed(staff_client.get(URL, {"sort": "-created_at", "before": back})) == listed(first)


def test_the_next_page_continues_where_the_last_ended_while_entries_arrive(staff_client):
    entries = oldest_first(55)
    first = staff_client.get(URL, {"sort": "-created_at"})

    # Newer than every entry listed: an OFFSET would shift page 2 by three.
    EntryFactory.create_batch(3, created_at=timezone.now())
    second = staff_client.get(
        URL, {"sort": "-created_at", "after": first.context["page"].next_cursor}
    )

    assert listed(second) == [entry.pk for entry in entries[4::-1]]


def test_the_count_is_exact_for_a_short_list(staff_client):
    oldest_first(51)

    response = staff_client.get(URL)

    assert response.context["count"].exact
    assert "51 entries, live only" in response.content.decode()


def test_past_a_thousand_postgresql_shows_an_estimate_labelled_as_one(staff_client):
    version = SchemaVersionFactory()
    Entry.objects.bulk_create(EntryFactory.build_batch(1_001, schema_version=version))

    response = staff_client.get(URL, {"state": "all"})

    count = response.context["count"]
    html = response.content.decode()
    if connection.vendor == "postgresql":
        assert not count.exact
        assert f">{count.label}</span> entries" in html
        assert count.label.startswith(("about ", "more than "))
    else:
        assert "1,001 entries" in html


@pytest.mark.parametrize(
    "cursor",
    [
        {"after": "not a cursor"},
        {"after": "W10"},  # []
        {"before": "WyJuZXdlc3QiLCAiMjAyNS0wMS0wMVQwMDowMDowMCswMDowMCIsIDFd"},  # another sort's
        {"after": "WyJsYXN0LWhpdCIsICIyMDI1LTAxLTAxVDAwOjAwOjAwIiwgMV0"},  # no time zone
        {"after": "WyJsYXN0LWhpdCIsIG51bGwsIDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ"},  # id out of range
        {"after": "x" * 1000},
    ],
)
def test_a_bad_cursor_gives_the_first_page_with_a_note(staff_client, cursor):
    entries = oldest_first(2)

    response = staff_client.get(URL, cursor)

    assert listed(response) == [entries[1].pk, entries[0].pk]
    assert 'data-testid="bad-cursor"' in response.content.decode()


def test_a_cursor_past_every_entry_offers_the_first_page(staff_client):
    entries = oldest_first(51)
    cursor = staff_client.get(URL, {"sort": "-created_at"}).context["page"].next_cursor
    entries[0].delete()

    response = staff_client.get(URL, {"sort": "-created_at", "after": cursor})

    assert listed(response) == []
    html = response.content.decode()
    assert "No more entries here." in html
    assert 'href="?sort=-created_at" hx-get="?sort=-created_at">Back to the first page' in html


@pytest.mark.parametrize(
    "params",
    [
        {"schema_version": "xyz"},
        {"schema_version": "99999"},
        {"function": "nowhere:gone"},
        {"model": "gpt-99"},
        {"state": "sideways"},
        {"sort": "-; DROP TABLE"},
        {"q": "x" * 500},
    ],
)
def test_invalid_filters_are_reported_and_left_out(staff_client, params):
    entry = EntryFactory()

    response = staff_client.get(URL, params)

    assert listed(response) == [entry.pk]
    html = response.content.decode()
    assert "Some filters were not understood and are left out." in html


def test_htmx_requests_get_only_the_results(staff_client):
    EntryFactory()

    response = staff_client.get(URL, {"q": "Person"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert 'id="entry-results"' in html
    assert "<html" not in html
    assert 'role="search"' not in html


def test_the_results_region_targets_itself_and_pushes_the_url(staff_client):
    html = staff_client.get(URL).content.decode()

    assert 'hx-target="#entry-results"' in html
    assert 'hx-push-url="true"' in html


def test_cached_output_is_escaped(staff_client):
    EntryFactory(
        output={"name": "<script>alert(1)</script>", "age": 1},
        arguments={"text": "<script>alert(1)</script>", "model": "gpt-4o-mini"},
        input_preview="<script>alert(1)</script>",
    )

    html = staff_client.get(URL).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    assert plain_user_client.get(URL).status_code == 403


def test_the_list_does_not_accept_posts(staff_client):
    assert staff_client.post(URL).status_code == 405
