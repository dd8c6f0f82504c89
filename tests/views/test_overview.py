"""The Overview page: what the cache saved beside provider prompt caching, and the chart."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from extractor.models import Call, DroppedRecords
from extractor.recording.rollups import Rollups, counts_of
from extractor.recording.tally import HOUR, Latencies
from extractor.selectors.stats import Bucket
from extractor.templatetags.extractor_tags import duration_ms
from tests.factories import CallFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:overview")
PRICES = {"model-a": (1.0, 0.5, 2.0)}  # USD per million tokens: input, cached input, output
GROUP = re.compile(
    r'<g class="bucket" data-start="([^"]+)" data-hits="(\d+)" data-misses="(\d+)"'
    r' data-errors="(\d+)">'
)


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert match, f"no {name} on the page"
    return match.group(1)


def groups(html: str) -> list[tuple[dt.date, int, int, int]]:
    return [
        (
            timezone.localtime(dt.datetime.fromisoformat(start)).date(),
            int(hits),
            int(misses),
            int(errors),
        )
        for start, hits, misses, errors in GROUP.findall(html)
    ]


@pytest.fixture
def known_calls(settings):
    """One entry of model-a (1000 in, 200 of them cached, 500 out, 800 ms), its miss,
    three hits, and a second miss with 400 cached prompt tokens."""
    settings.EXTRACTOR_PRICES = PRICES
    now = timezone.now()
    entry = EntryFactory(
        schema_version=SchemaVersionFactory(name="app.schemas.Person"),
        llm_model="model-a",
        prompt_tokens=1000,
        cached_prompt_tokens=200,
        completion_tokens=500,
        latency_ms=800.0,
    )
    CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        prompt_tokens=1000,
        cached_prompt_tokens=200,
        completion_tokens=500,
        latency_ms=800.0,
        created_at=now - dt.timedelta(days=2),
    )
    # An hour more than a day ago: the windows start at the hour (the counters are hourly).
    a_day_ago = now - dt.timedelta(days=1, hours=1)
    CallFactory.create_batch(3, entry=entry, latency_ms=0.5, created_at=a_day_ago)
    other = EntryFactory(
        schema_version=SchemaVersionFactory(name="app.schemas.Invoice"), llm_model="model-a"
    )
    CallFactory(
        entry=other,
        outcome=Call.Outcome.MISS,
        prompt_tokens=1000,
        cached_prompt_tokens=400,
        created_at=a_day_ago,
    )
    return now


def test_the_numbers_for_a_known_set_of_calls(staff_client, known_calls):
    response = staff_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="lead"' in html
    assert figure(html, "hit-rate") == "60.0%"  # 3 hits of 5 hits and misses
    assert figure(html, "hits") == "3"
    assert figure(html, "misses") == "2"
    assert figure(html, "tokens-saved") == "4,500"  # 3 x (1000 + 500)
    # Each hit saved 800 x $1 + 200 x $0.5 + 500 x $2 per million = $0.0019.
    assert figure(html, "cost-saved") == "$0.0057"
    assert figure(html, "latency-saved") == "2.4 s"  # 3 x (800 - 0.5) ms
    assert figure(html, "reached-llm") == "2"
    assert figure(html, "provider-cached-tokens") == "600"
    # 600 cached tokens at $0.5 less than $1 per million.
    assert figure(html, "provider-cost-saved") == "$0.0003"
    assert "This cache" in html
    assert "Provider prompt caching" in html


def test_each_schema_has_its_row(staff_client, known_calls):
    response = staff_client.get(URL)

    by_schema = {s.label: s for s in response.context["overview"].by_schema}
    assert list(by_schema) == ["Person", "Invoice"]
    assert (by_schema["Person"].hits, by_schema["Person"].misses) == (3, 1)
    assert (by_schema["Invoice"].hits, by_schema["Invoice"].misses) == (0, 1)
    html = response.content.decode()
    assert html.count('data-testid="schema-row"') == 2
    assert '<th scope="row" title="app.schemas.Person">Person</th>' in html
    assert "75.0%" in html  # Person: 3 of 4


def test_the_window_leaves_out_older_calls(staff_client, known_calls):
    CallFactory.create_batch(
        4, entry=EntryFactory(), created_at=known_calls - dt.timedelta(days=20)
    )

    assert figure(staff_client.get(URL).content.decode(), "hits") == "3"
    assert figure(staff_client.get(URL, {"days": "30"}).content.decode(), "hits") == "7"
    assert figure(staff_client.get(URL, {"days": "all"}).content.decode(), "hits") == "7"
    # The hits were a day before the fixture's "now", so just outside the last 24 hours.
    assert figure(staff_client.get(URL, {"days": "1"}).content.decode(), "hits") == "0"


@pytest.mark.parametrize("days", ["banana", "0", "-7", "365", ""])
def test_an_unknown_window_is_the_default_week(staff_client, known_calls, days):
    response = staff_client.get(URL, {"days": days})

    assert response.status_code == 200
    assert response.context["window"] == "7"
    assert response.context["overview"].days == 7
    assert 'aria-current="true">7 days<' in response.content.decode()


def test_the_window_links_work_without_javascript_and_with_htmx(staff_client, known_calls):
    html = staff_client.get(URL).content.decode()

    assert 'href="?days=30"' in html
    assert 'hx-get="?days=30"' in html
    assert 'hx-target="#overview-body"' in html


def test_the_chart_has_one_group_per_day_with_the_counts(staff_client, known_calls):
    CallFactory(
        entry=None, outcome=Call.Outcome.ERROR, created_at=known_calls - dt.timedelta(days=3)
    )

    html = staff_client.get(URL, {"days": "30"}).content.decode()

    drawn = groups(html)
    today = timezone.localdate(known_calls)
    assert len(drawn) == 31  # 30 days back to today, empty days included
    assert drawn[-1][0] == today
    counts = {day: (hits, misses, errors) for day, hits, misses, errors in drawn}
    # The days come from the calls' times: run in the first hour of a day, the calls
    # made "a day and an hour ago" fall on the day before yesterday.
    expected: dict[dt.date, list[int]] = {}
    for hours_ago, hits, misses, errors in ((72, 0, 0, 1), (48, 0, 1, 0), (25, 3, 1, 0)):
        day = timezone.localdate(known_calls - dt.timedelta(hours=hours_ago))
        so_far = expected.setdefault(day, [0, 0, 0])
        expected[day] = [so_far[0] + hits, so_far[1] + misses, so_far[2] + errors]
    assert {day: counts[day] for day in expected} == {
        day: tuple(expected_counts) for day, expected_counts in expected.items()
    }
    assert sum(sum(drawn_counts) for _day, *drawn_counts in drawn) == 6
    assert 'role="img"' in html
    assert 'aria-label="Hits, misses and errors per day' in html
    assert "3 hits, 2 misses, 1 error in total" in html
    assert 'class="key key-error"></span> Errors' in html  # the legend
    assert "<details" in html
    table = html.split('class="chart-data"', 1)[1].split("</details>", 1)[0]
    assert table.count('<tr><th scope="row">') == 31
    assert '<th scope="col" class="num">Errors</th>' in table


def test_the_last_24_hours_are_drawn_per_hour(staff_client, known_calls):
    CallFactory(entry=EntryFactory(), created_at=known_calls - dt.timedelta(hours=3))

    response = staff_client.get(URL, {"days": "1"})

    assert response.context["overview"].bucket == "hour"
    assert len(GROUP.findall(response.content.decode())) == 25
    assert "per hour" in response.content.decode()


def test_the_chart_escapes_every_label():
    series = [Bucket(timezone.now(), 2, 1)]
    html = Template("{% load charts %}{% hit_miss_chart series 'day' title %}").render(
        Context({"series": series, "title": '<script>alert("x")</script>'})
    )

    assert "<script>" not in html
    assert 'aria-label="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; per day' in html
    assert "<title>" in html
    assert "2 hits, 1 miss, 0 errors" in html


def test_an_empty_series_is_a_sentence_not_a_chart():
    html = Template("{% load charts %}{% hit_miss_chart series 'day' %}").render(
        Context({"series": []})
    )

    assert "<svg" not in html
    assert "No hits, misses or errors in this window" in html


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0.012, "0.012 ms"),
        (0.0001, "< 0.001 ms"),
        (12.34, "12.3 ms"),
        (850, "850 ms"),
        (99.97, "100 ms"),
        (999.7, "1.0 s"),
        (2399.5, "2.4 s"),
        (125_000, "2 min 5 s"),
        (7_500_000, "2 h 5 min"),
        (None, "—"),
        (0, "0 ms"),
    ],
)
def test_durations_read_well(ms, shown):
    assert duration_ms(ms) == shown


def test_models_without_a_price_are_named(staff_client, settings):
    settings.EXTRACTOR_PRICES = PRICES
    CallFactory.create_batch(2, entry=EntryFactory(llm_model="mystery-model"))

    html = staff_client.get(URL).content.decode()

    assert "No price for model <code>mystery-model</code>: set" in html
    assert "EXTRACTOR_PRICES" in html


def test_no_calls_yet_points_to_extract(staff_client):
    html = staff_client.get(URL).content.decode()

    assert "No calls yet: try" in html
    assert f'href="{reverse("extractor:extract")}"' in html
    assert "<svg" not in html


def test_a_quiet_window_says_so_and_offers_all_time(staff_client):
    CallFactory(entry=EntryFactory(), created_at=timezone.now() - dt.timedelta(days=60))

    html = staff_client.get(URL).content.decode()

    assert "No calls in this window" in html
    assert 'href="?days=all"' in html


def test_real_extractions_show_up(staff_client, fake_llm, flush_records):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)
    from extractor import extraction

    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    html = staff_client.get(URL).content.decode()

    assert figure(html, "hit-rate") == "50.0%"
    assert figure(html, "tokens-saved") == "1,540"
    assert figure(html, "provider-cached-tokens") == "1,024"


def test_htmx_requests_get_only_the_body(staff_client, known_calls):
    response = staff_client.get(URL, {"days": "30"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert 'id="overview-body"' in html
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    assert plain_user_client.get(URL).status_code == 403


def test_hits_counted_without_a_row_and_dropped_records_are_shown(staff_client):
    entry = EntryFactory()
    CallFactory(entry=entry)
    # What the writer adds for 40 hits of which 10 were itemised: 30 counted only.
    hour = int(timezone.now().timestamp()) // HOUR
    latencies = Latencies()
    for _ in range(40):
        latencies.add(0.00002)
    rollups = Rollups()
    rollups.add(
        hour,
        entry.function,
        entry.schema_version_id,
        entry.llm_model,
        "hit",
        counts_of(latencies, itemised=10),
    )
    rollups.write()
    DroppedRecords.objects.create(count=7, process="web-1:42", reason="buffer full")

    html = staff_client.get(URL).content.decode()

    assert figure(html, "hits") == "41"
    assert figure(html, "counted-only") == "30"
    assert "7 call records could not be written" in " ".join(html.split())


def test_nothing_is_said_of_itemising_when_every_call_has_its_row(staff_client, known_calls):
    html = staff_client.get(URL).content.decode()

    assert 'data-testid="counted-only"' not in html
    assert 'data-testid="dropped"' not in html


def test_calls_are_shown_by_how_long_they_took(staff_client, known_calls):
    html = staff_client.get(URL, {"days": "30"}).content.decode()

    table = html.split('data-testid="latency"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r"<th scope=\"row\">([^<]+)</th><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">(\d+)</td>",
        table,
    )
    # Three hits of 0.5 ms; a miss of 800 ms and one of the factory's 0.02 ms.
    assert rows == [("≤ 0.1 ms", "0", "1"), ("≤ 1 ms", "3", "0"), ("≤ 1 s", "0", "1")]


CELL = re.compile(r"<t[hd][^>]*>.*?</t[hd]>")


def rows(html: str, kind: str) -> list[list[str]]:
    """The cells of a breakdown table, tags stripped."""
    table = html.split(f'data-testid="{kind}-table"', 1)[1].split("</table>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in CELL.findall(row)]
        for row in re.findall(r'<tr data-testid="[a-z]+-row">(.*?)</tr>', table, re.S)
    ]


def test_each_function_and_model_has_its_row(staff_client, known_calls):
    html = staff_client.get(URL).content.decode()

    # The fixture's entries share the factory's function and model-a.
    function = "extractor.extraction:extract_UserDetail"
    assert f'<th scope="row" title="{function}">extract_UserDetail</th>' in html
    # Name, calls, hit rate, hits, misses, errors, hit time, miss time, tokens, cost...
    assert rows(html, "function")[0][:10] == [
        "extract_UserDetail",
        "5",
        "60.0%",
        "3",
        "2",
        "0",
        "≤ 1 ms / ≤ 1 ms",
        "≤ 0.1 ms / ≤ 1 s",
        "4,500",
        "$0.0057",
    ]
    assert [row[:5] for row in rows(html, "model")] == [["model-a", "5", "60.0%", "3", "2"]]
    assert len(rows(html, "schema")) == 2


def test_percentiles_say_they_are_read_from_buckets(staff_client, known_calls):
    html = " ".join(staff_client.get(URL).content.decode().split())

    assert 'Hit time p50 / p95 <span class="muted">(cache)</span>' in html
    assert 'Miss time p50 / p95 <span class="muted">(LLM)</span>' in html
    assert "named by its upper bound" in html  # the column's title
    assert 'data-testid="percentiles-note"' in html
    assert "not interpolated" in html
    assert "Misses (LLM): p50 ≤ 0.1 ms, p95 ≤ 1 s." in html


def test_a_quiet_window_has_no_breakdown_tables(staff_client):
    CallFactory(entry=EntryFactory(), created_at=timezone.now() - dt.timedelta(days=60))

    html = staff_client.get(URL).content.decode()

    assert 'data-testid="function-table"' not in html
    assert "No calls in this window" in html
