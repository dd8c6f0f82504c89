"""Invalidate: a confirmation that counts, values gone from the backend, history kept."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from extractor import extraction
from extractor.caching.defaults import default_backend
from extractor.models import Call, Entry, Invalidation
from extractor.selectors.counting import Tally
from tests.factories import (
    CachedFunctionFactory,
    EntryFactory,
    InvalidationFactory,
    SchemaVersionFactory,
)
from tests.services.conftest import redis_servers

pytestmark = pytest.mark.django_db

__all__ = ["redis_servers"]

CONFIRM = reverse("extractor:invalidate")
LIST = reverse("extractor:invalidations")
USER_DETAIL = "extractor.extraction:extract_UserDetail"
CHARACTER = "extractor.extraction:extract_Character"


def detail_url(pk: int) -> str:
    return reverse("extractor:invalidation", args=[pk])


def retry_url(pk: int) -> str:
    return reverse("extractor:invalidation-retry", args=[pk])


@pytest.fixture
def cache_rows():
    """Rows of two schema versions, two functions and two models, some stale.

    The function's current code is "code-v1" with schema v2, so `old_schema` (v1) and
    `old_code` are stale; `other` belongs to a function with no CachedFunction row.
    """
    v1 = SchemaVersionFactory(number=1)
    v2 = SchemaVersionFactory(number=2)
    current = CachedFunctionFactory(name=USER_DETAIL, schema_version=v2)
    rows = {
        "old_schema": EntryFactory(function=USER_DETAIL, schema_version=v1),
        "current": EntryFactory(function=USER_DETAIL, schema_version=v2, llm_model="gpt-4o"),
        "old_code": EntryFactory(function=USER_DETAIL, schema_version=v2, code_fingerprint="c0"),
        "other": EntryFactory(function="tests.other:extract", schema_version=v1),
        "gone": EntryFactory(
            function=USER_DETAIL, schema_version=v2, status=Entry.Status.INVALIDATED
        ),
    }
    assert rows["current"].code_fingerprint == current.code_fingerprint
    return {"v1": v1, "v2": v2, **rows}


def statuses() -> dict[int, str]:
    return dict(Entry.objects.values_list("pk", "status"))


@pytest.mark.parametrize(
    ("action", "target", "expected"),
    [
        ("entry", lambda rows: rows["old_schema"].pk, 1),
        ("schema_version", lambda rows: rows["v1"].pk, 2),
        ("schema_version", lambda rows: rows["v2"].pk, 2),
        ("function", lambda rows: USER_DETAIL, 3),
        ("model", lambda rows: "gpt-4o-mini", 3),
        ("stale", lambda rows: "", 2),
    ],
)
def test_the_confirmation_counts_the_live_entries_of_each_action(
    staff_client, cache_rows, action, target, expected
):
    response = staff_client.get(CONFIRM, {"action": action, "target": target(cache_rows)})

    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["count"] == Tally(expected, exact=True)
    noun = "entry" if expected == 1 else "entries"
    # "live" only when every one is; else the total, then how many are live and stale.
    assert re.search(f"This will invalidate <strong>{expected}</strong> (live )?{noun} of", html)
    assert response.context["description"] in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'name="action" value="{action}"' in html
    assert f'href="{LIST}">Cancel</a>' in html


def test_the_confirmation_names_the_schema_version(staff_client, cache_rows):
    params = {"action": "schema_version", "target": cache_rows["v1"].pk}

    response = staff_client.get(CONFIRM, params)

    assert "entries of schema UserDetail v1: " in response.content.decode()


def test_nothing_to_invalidate_says_so_and_offers_no_button(staff_client, cache_rows):
    response = staff_client.get(CONFIRM, {"action": "entry", "target": cache_rows["gone"].pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert f"no cached value is left for entry #{cache_rows['gone'].pk}." in html
    assert "Nothing to invalidate" in html
    assert 'method="post"' not in html.split("<main>")[1]


def test_a_get_changes_nothing(staff_client, cache_rows):
    before = statuses()

    for action, target in [("function", USER_DETAIL), ("stale", ""), ("model", "gpt-4o")]:
        staff_client.get(CONFIRM, {"action": action, "target": target})

    assert statuses() == before
    assert not Invalidation.objects.exists()


def test_without_parameters_the_page_offers_a_chooser(staff_client):
    response = staff_client.get(CONFIRM)

    html = response.content.decode()
    assert response.status_code == 200
    assert "What to invalidate" in html
    assert 'class="lead"' in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "everything", "target": "x"}, "Unknown action"),
        ({"target": "x"}, "Choose what to invalidate."),
        ({"action": "function"}, "Name a function name"),
        ({"action": "function", "target": "  "}, "Name a function name"),
        ({"action": "entry", "target": "abc"}, "is not an entry id"),
        ({"action": "entry", "target": "-3"}, "is not an entry id"),
        ({"action": "schema_version", "target": "99999"}, "There is no schema version #99999"),
        ({"action": "entry", "target": "99999"}, "There is no entry #99999"),
    ],
)
def test_bad_parameters_are_a_readable_400(staff_client, params, message):
    response = staff_client.get(CONFIRM, params)

    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")


def test_a_bad_post_invalidates_nothing(staff_client, cache_rows):
    before = statuses()

    response = staff_client.post(CONFIRM, {"action": "everything", "target": USER_DETAIL})

    assert response.status_code == 400
    assert "Unknown action" in response.content.decode()
    assert statuses() == before
    assert not Invalidation.objects.exists()


def test_a_post_invalidates_only_the_matching_live_entries(staff_client, staff_user, cache_rows):
    started = timezone.now()

    response = staff_client.post(CONFIRM, {"action": "model", "target": "gpt-4o"})

    invalidation = Invalidation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(invalidation.pk)
    assert (invalidation.action, invalidation.target) == ("model", "gpt-4o")
    assert invalidation.requested_by == staff_user
    assert started <= invalidation.created_at <= invalidation.finished_at <= timezone.now()
    assert (invalidation.status, invalidation.matched, invalidation.removed) == ("done", 1, 1)
    current = Entry.objects.get(pk=cache_rows["current"].pk)
    assert current.status == Entry.Status.INVALIDATED
    assert current.invalidation == invalidation
    untouched = Entry.objects.exclude(pk__in=[current.pk, cache_rows["gone"].pk])
    assert set(untouched.values_list("status", flat=True)) == {Entry.Status.LIVE}
    assert not untouched.filter(invalidation__isnull=False).exists()


def test_an_htmx_post_sends_the_browser_to_the_job_s_progress(staff_client, cache_rows):
    page = staff_client.get(CONFIRM, {"action": "model", "target": "gpt-4o"})
    response = staff_client.post(
        CONFIRM, {"action": "model", "target": "gpt-4o"}, headers={"HX-Request": "true"}
    )

    assert "A background job removes their values" in page.content.decode()
    invalidation = Invalidation.objects.get()
    assert response["HX-Redirect"] == detail_url(invalidation.pk)
    assert invalidation.status == "done"


def test_the_stale_action_matches_exactly_the_entries_behind_their_function(
    staff_client, cache_rows
):
    staff_client.post(CONFIRM, {"action": "stale", "target": "ignored"})

    invalidation = Invalidation.objects.get()
    assert (invalidation.action, invalidation.target) == ("stale", "")
    invalidated = set(invalidation.entries.values_list("pk", flat=True))
    assert invalidated == {cache_rows["old_schema"].pk, cache_rows["old_code"].pk}
    assert Entry.objects.get(pk=cache_rows["current"].pk).status == Entry.Status.LIVE
    assert Entry.objects.get(pk=cache_rows["other"].pk).status == Entry.Status.LIVE


def test_invalidated_values_leave_the_backend_and_the_next_call_says_why(
    staff_client, fake_llm, flush_records
):
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    extraction.extract("Ada, a mathematician", "Character", "gpt-4o-mini")
    flush_records()
    person = Entry.objects.get(function=USER_DETAIL)
    character = Entry.objects.get(function=CHARACTER)
    backend = default_backend()
    assert backend.get(person.key) is not None

    staff_client.post(CONFIRM, {"action": "function", "target": USER_DETAIL})

    assert backend.get(person.key) is None
    assert backend.get(character.key) is not None
    person.refresh_from_db()
    assert person.status == Entry.Status.INVALIDATED
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    extraction.extract("Ada, a mathematician", "Character", "gpt-4o-mini")
    flush_records()
    assert fake_llm.count == 3  # the invalidated one asked the LLM again, the other hit
    again = Call.objects.filter(key=person.key).order_by("-created_at", "-id").first()
    assert (again.outcome, again.miss_reason) == ("miss", "invalidated")
    assert Call.objects.filter(key=character.key).order_by("-id").first().outcome == "hit"


def test_the_detail_page_shows_what_was_done(staff_client, cache_rows):
    staff_client.post(CONFIRM, {"action": "function", "target": USER_DETAIL})
    invalidation = Invalidation.objects.get()

    response = staff_client.get(detail_url(invalidation.pk))

    html = response.content.decode()
    assert "Invalidation #" in html
    assert 'class="lead"' in html
    assert "Function" in html
    assert USER_DETAIL in html
    assert "ada" in html
    assert 'data-testid="matched">3<' in html
    assert 'data-testid="removed">3<' in html
    assert 'data-testid="status">Done<' in html
    assert "Retry" not in html


def test_a_backend_failure_leaves_rows_marked_and_a_retry_finishes(
    staff_client, fake_llm, flush_records, settings, redis_servers
):
    server = redis_servers()
    settings.EXTRACTOR_CACHE_URL = server.url
    for text in ("Jason is 25", "Ada is 36", "Grace is 85"):
        extraction.extract(text, "UserDetail", "gpt-4o-mini")
    flush_records()
    assert Entry.objects.filter(status=Entry.Status.LIVE).count() == 3
    server.stop()

    response = staff_client.post(CONFIRM, {"action": "function", "target": USER_DETAIL})

    invalidation = Invalidation.objects.get()
    assert response.status_code == 302
    assert invalidation.status == Invalidation.Status.FAILED
    assert invalidation.error
    assert invalidation.finished_at is None
    marked = Entry.objects.filter(invalidation=invalidation)
    assert set(marked.values_list("status", flat=True)) == {Entry.Status.INVALIDATING}
    assert marked.count() == 3
    page = staff_client.get(response["Location"]).content.decode()
    assert "3 entries are still marked" in page
    assert retry_url(invalidation.pk) in page
    assert "It stopped:" in page

    settings.EXTRACTOR_CACHE_URL = redis_servers().url  # Redis is back
    retried = staff_client.post(retry_url(invalidation.pk))

    invalidation.refresh_from_db()
    assert retried["Location"] == detail_url(invalidation.pk)
    assert (invalidation.status, invalidation.removed, invalidation.error) == ("done", 3, "")
    assert set(marked.values_list("status", flat=True)) == {Entry.Status.INVALIDATED}


def marked(**fields) -> Invalidation:
    """An invalidation whose job has marked its rows (a retry does not mark again)."""
    return InvalidationFactory(marked_at=timezone.now(), **fields)


def test_an_invalidation_cut_off_while_running_can_be_finished(staff_client):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    stalled = marked(created_at=an_hour_ago, heartbeat_at=an_hour_ago, matched=2)
    rows = EntryFactory.create_batch(
        2, function=USER_DETAIL, status=Entry.Status.INVALIDATING, invalidation=stalled
    )
    for row in rows:
        default_backend().set(row.key, "{}")

    page = staff_client.get(detail_url(stalled.pk)).content.decode()
    staff_client.post(retry_url(stalled.pk))

    assert "worker was\n  probably cut off" in page
    assert retry_url(stalled.pk) in page
    stalled.refresh_from_db()
    assert (stalled.status, stalled.removed) == ("done", 2)
    assert all(default_backend().get(row.key) is None for row in rows)
    assert set(stalled.entries.values_list("status", flat=True)) == {"invalidated"}


def test_a_running_invalidation_is_not_retried_while_it_may_still_run(staff_client):
    running = marked(matched=1)
    EntryFactory(status=Entry.Status.INVALIDATING, invalidation=running)

    page = staff_client.get(detail_url(running.pk)).content.decode()
    staff_client.post(retry_url(running.pk))

    assert "Removed 0 of 1 from the backend." in page
    assert retry_url(running.pk) not in page
    assert running.entries.get().status == Entry.Status.INVALIDATING


def test_retrying_an_invalidation_that_did_not_fail_changes_nothing(staff_client, cache_rows):
    invalidation = InvalidationFactory(status=Invalidation.Status.DONE, matched=2, removed=2)

    response = staff_client.post(retry_url(invalidation.pk), follow=True)

    invalidation.refresh_from_db()
    assert invalidation.status == Invalidation.Status.DONE
    assert "Only a failed or stalled invalidation can be retried" in response.content.decode()


def test_the_list_shows_past_invalidations_a_page_at_a_time(staff_client, staff_user):
    now = timezone.now()
    for number in range(60):
        InvalidationFactory(
            target=f"fn-{number}",
            requested_by=staff_user,
            created_at=now - timedelta(minutes=number),
        )

    first = staff_client.get(LIST).content.decode()
    second = staff_client.get(LIST, {"page": 2}).content.decode()

    assert first.count("<code>fn-") == 50
    assert "fn-0<" in first
    assert second.count("<code>fn-") == 10
    assert "fn-59<" in second
    assert "Page 1 of 2" in first


def test_the_list_names_the_schema_version_and_links_the_entry(staff_client, cache_rows):
    version, entry = cache_rows["v1"], cache_rows["old_schema"]
    InvalidationFactory(action="schema_version", target=str(version.pk))
    InvalidationFactory(action="entry", target=str(entry.pk))
    InvalidationFactory(action="schema_version", target="99999")

    html = staff_client.get(LIST).content.decode()

    assert f"<code>UserDetail v1 (#{version.pk})</code>" in html
    entry_url = reverse("extractor:entry", args=[entry.pk])
    assert f'<a href="{entry_url}"><code>entry #{entry.pk}</code></a>' in html
    assert "<code>#99999 (deleted)</code>" in html


def test_the_list_offers_to_invalidate_every_stale_entry(staff_client):
    html = staff_client.get(LIST).content.decode()

    assert f'href="{CONFIRM}?action=stale"' in html
    assert "Nothing has been invalidated yet" in html
    assert 'class="lead"' in html


def test_htmx_pagination_gets_only_the_rows(staff_client):
    InvalidationFactory()

    response = staff_client.get(LIST, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert 'id="invalidation-rows"' in html
    assert "<html" not in html


def test_a_script_in_a_target_or_action_is_escaped(staff_client):
    script = "<script>alert(1)</script>"
    InvalidationFactory(target=script)

    pages = [
        staff_client.get(CONFIRM, {"action": "function", "target": script}),
        staff_client.get(CONFIRM, {"action": script, "target": script}),
        staff_client.get(LIST),
        staff_client.get(detail_url(Invalidation.objects.get().pk)),
    ]

    for page in pages:
        assert script not in page.content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content.decode()


def test_unknown_invalidations_are_404(staff_client):
    assert staff_client.get(detail_url(999)).status_code == 404
    assert staff_client.post(retry_url(999)).status_code == 404


def test_post_only_urls_refuse_other_methods(staff_client):
    invalidation = InvalidationFactory(status=Invalidation.Status.FAILED)

    assert staff_client.get(retry_url(invalidation.pk)).status_code == 405
    assert staff_client.post(LIST).status_code == 405
    assert staff_client.post(detail_url(invalidation.pk)).status_code == 405
    assert staff_client.put(CONFIRM).status_code == 405


def test_the_invalidation_post_needs_its_csrf_token(staff_user, cache_rows):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)

    response = client.post(CONFIRM, {"action": "stale", "target": ""})

    assert response.status_code == 403
    assert not Invalidation.objects.exists()


def all_urls() -> list[tuple[str, str]]:
    return [
        ("get", CONFIRM),
        ("post", CONFIRM),
        ("get", LIST),
        ("get", detail_url(1)),
        ("post", retry_url(1)),
    ]


@pytest.mark.parametrize(("method", "url"), all_urls())
def test_anonymous_users_are_sent_to_log_in(client, method, url):
    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("method", "url"), all_urls())
def test_users_who_are_not_staff_are_refused(plain_user_client, method, url):
    InvalidationFactory(pk=1, status=Invalidation.Status.FAILED)

    response = getattr(plain_user_client, method)(url, {"action": "stale", "target": ""})

    assert response.status_code == 403
    assert Invalidation.objects.get(pk=1).status == Invalidation.Status.FAILED


def test_a_failed_invalidation_with_nothing_left_marked_offers_to_mark_it_done(staff_client):
    failed = marked(status=Invalidation.Status.FAILED, matched=2, removed=2)

    page = staff_client.get(detail_url(failed.pk)).content.decode()
    staff_client.post(retry_url(failed.pk))

    assert "No entry is still marked" in page
    assert "Retry the remaining 0" not in page
    failed.refresh_from_db()
    assert failed.status == Invalidation.Status.DONE
