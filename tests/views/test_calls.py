"""The Calls page: the call log, filtered from the query string, paginated, safe."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from extractor.models import Call
from tests.factories import CachedFunctionFactory, CallFactory, EntryFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:calls")
NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


def previews(response) -> list[str]:
    """The input previews of the page's calls, in page order."""
    return [call.input_preview for call in response.context["page"].object_list]


@pytest.fixture
def log():
    """Four calls an hour apart, two functions, two models."""
    CachedFunctionFactory(name="app:extract_a")
    CachedFunctionFactory(name="app:extract_b")
    a = EntryFactory(function="app:extract_a", llm_model="gpt-4o-mini")
    b = EntryFactory(function="app:extract_b", llm_model="gpt-4o")
    CallFactory(entry=a, input_preview="hit a", created_at=NOW - dt.timedelta(hours=3))
    CallFactory(
        entry=a,
        outcome=Call.Outcome.MISS,
        miss_reason=Call.MissReason.SCHEMA_CHANGED,
        reason_detail="v1 -> v2",
        latency_ms=850.0,
        prompt_tokens=1200,
        cached_prompt_tokens=1024,
        cache_write_tokens=96,
        completion_tokens=30,
        input_preview="miss a",
        created_at=NOW - dt.timedelta(hours=2),
    )
    CallFactory(
        entry=b, input_preview="hit b", latency_ms=0.012, created_at=NOW - dt.timedelta(hours=1)
    )
    CallFactory(
        entry=None,
        function="app:extract_b",
        llm_model="gpt-4o",
        outcome=Call.Outcome.ERROR,
        error="provider said no",
        input_preview="error b",
        created_at=NOW,
    )


def test_every_call_newest_first_with_its_details(staff_client, log):
    response = staff_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert previews(response) == ["error b", "hit b", "miss a", "hit a"]
    assert 'class="lead"' in html
    assert 'class="badge outcome-miss"' in html
    assert "Schema changed" in html
    assert "v1 -&gt; v2" in html
    assert "0.012 ms" in html
    assert "850 ms" in html
    # In, of which read from and written to the provider's prompt cache, out.
    assert "1,200 / 1,024 / 96 / 30" in html
    assert "Tokens in / read / written / out" in html
    assert "provider said no" in html
    assert '<td title="app:extract_a">extract_a</td>' in html
    miss = Call.objects.get(input_preview="miss a")
    assert f'href="{reverse("extractor:entry", args=[miss.entry_id])}"' in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"outcome": "hit"}, ["hit b", "hit a"]),
        ({"outcome": "error"}, ["error b"]),
        ({"function": "app:extract_a"}, ["miss a", "hit a"]),
        ({"model": "gpt-4o"}, ["error b", "hit b"]),
        ({"outcome": "hit", "model": "gpt-4o-mini"}, ["hit a"]),
    ],
)
def test_each_filter_narrows_the_log(staff_client, log, params, expected):
    assert previews(staff_client.get(URL, params)) == expected


def test_since_and_until_are_read_in_the_site_time_zone(staff_client, log, settings):
    settings.TIME_ZONE = "Europe/Paris"  # UTC+2 in May: the miss at 10:00 UTC is 12:00 here

    from_the_miss = staff_client.get(URL, {"since": "2025-05-01T12:00"})
    before_the_miss = staff_client.get(URL, {"until": "2025-05-01T12:00"})
    just_the_miss = staff_client.get(
        URL, {"since": "2025-05-01T12:00", "until": "2025-05-01T13:00"}
    )

    assert previews(from_the_miss) == ["error b", "hit b", "miss a"]
    assert previews(before_the_miss) == ["hit a"]
    assert previews(just_the_miss) == ["miss a"]
    # The inputs show the value back as the browser's datetime-local expects it.
    assert 'type="datetime-local" name="since" value="2025-05-01T12:00"' in (
        from_the_miss.content.decode()
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "garbage"}, "Enter a date and time"),
        ({"until": "2025-13-45T99:99"}, "Enter a date and time"),
        ({"outcome": "teleported"}, "Select a valid choice"),
        ({"function": "nope:nothing"}, "Select a valid choice"),
        ({"model": "gpt-99"}, "Select a valid choice"),
        (
            {"since": "2025-05-01T12:00", "until": "2025-05-01T11:00"},
            "Until must be later than From",
        ),
    ],
)
def test_invalid_filters_are_reported_and_left_out(staff_client, log, params, message):
    response = staff_client.get(URL, {**params, "page": "abc"})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert "left out" in response.content.decode()
    assert len(previews(response)) >= 1


def test_a_valid_filter_still_applies_beside_an_invalid_one(staff_client, log):
    response = staff_client.get(URL, {"outcome": "hit", "since": "garbage"})

    assert previews(response) == ["hit b", "hit a"]


def test_fifty_calls_per_page_with_cursor_links_that_keep_the_filters(staff_client):
    entry = EntryFactory()
    start = timezone.now() - dt.timedelta(hours=1)
    for n in range(55):
        CallFactory(
            entry=entry, input_preview=f"call {n}", created_at=start + dt.timedelta(seconds=n)
        )

    first = staff_client.get(URL, {"outcome": "hit"})
    cursor = first.context["page"].next_cursor
    second = staff_client.get(URL, {"outcome": "hit", "after": cursor})

    assert len(previews(first)) == 50
    assert previews(first)[0] == "call 54"
    assert previews(second) == [f"call {n}" for n in range(4, -1, -1)]
    html = first.content.decode()
    assert "55 calls match these filters" in html
    # The older link keeps the filters, as a plain href and for htmx.
    assert f'href="?after={cursor}&amp;outcome=hit"' in html
    assert f'hx-get="?after={cursor}&amp;outcome=hit" rel="next">Older →' in html
    newer = second.context["page"].previous_cursor
    assert f'href="?before={newer}&amp;outcome=hit"' in second.content.decode()
    assert previews(staff_client.get(URL, {"outcome": "hit", "before": newer})) == previews(first)


def test_the_older_page_is_unmoved_by_calls_recorded_since(staff_client):
    entry = EntryFactory()
    start = timezone.now() - dt.timedelta(hours=1)
    for n in range(52):
        CallFactory(
            entry=entry, input_preview=f"call {n}", created_at=start + dt.timedelta(seconds=n)
        )
    cursor = staff_client.get(URL).context["page"].next_cursor

    CallFactory.create_batch(5, entry=entry, created_at=timezone.now())
    older = staff_client.get(URL, {"after": cursor})

    assert previews(older) == ["call 1", "call 0"]


@pytest.mark.parametrize(
    "cursor", [{"after": "abc"}, {"before": ""}, {"after": "W1tdXQ"}, {"after": "a", "before": "b"}]
)
def test_a_bad_cursor_gives_the_newest_calls_with_a_note(staff_client, log, cursor):
    response = staff_client.get(URL, cursor)

    assert response.status_code == 200
    assert previews(response) == ["error b", "hit b", "miss a", "hit a"]
    assert ('data-testid="bad-cursor"' in response.content.decode()) == any(cursor.values())


def test_htmx_requests_get_only_the_results(staff_client, log):
    response = staff_client.get(URL, {"outcome": "hit"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert 'id="call-results"' in html
    assert "<html" not in html
    assert "<form" not in html
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(staff_client, log):
    response = staff_client.get(
        URL, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )

    assert "<html" in response.content.decode()


def test_the_filter_form_works_without_javascript_and_with_htmx(staff_client, log):
    html = staff_client.get(URL).content.decode()

    assert f'<form method="get" action="{URL}"' in html
    assert 'hx-target="#call-results"' in html
    assert 'hx-push-url="true"' in html


def test_script_in_an_input_preview_is_escaped(staff_client):
    CallFactory(entry=None, input_preview='<script>alert("x")</script>')

    html = staff_client.get(URL).content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_no_calls_at_all_explains_where_they_come_from(staff_client):
    html = staff_client.get(URL).content.decode()

    assert "No calls recorded yet" in html
    assert reverse("extractor:extract") in html


def test_no_match_offers_to_clear_the_filters(staff_client, log):
    html = staff_client.get(URL, {"outcome": "bypass"}).content.decode()

    assert "No calls match these filters" in html
    assert "Clear the filters" in html


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    assert plain_user_client.get(URL).status_code == 403


def test_only_get_is_allowed(staff_client):
    assert staff_client.post(URL).status_code == 405
