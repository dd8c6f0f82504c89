"""Export: the Entries or Calls selection as CSV and JSON Lines, streamed, staff only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from extractor.models import Call, Entry
from extractor.selectors import export
from tests.factories import CachedFunctionFactory, CallFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


def body(response) -> str:
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode("utf-8")


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response))))


def jsonl_rows(response) -> list[dict]:
    return [json.loads(line) for line in body(response).splitlines()]


# -- entries -------------------------------------------------------------------------


def test_entries_csv_is_the_lists_selection_with_json_cells(staff_client):
    version = SchemaVersionFactory(name="app.schemas.Person", number=2)
    wanted = EntryFactory(
        function="app:extract_person",
        schema_version=version,
        arguments={"text": "Jason is 25", "model": "gpt-4o"},
        output={"name": "Jason", "age": 25},
        hit_count=3,
        last_hit_at=NOW,
        created_at=NOW - dt.timedelta(days=1),
    )
    EntryFactory(function="app:extract_book")  # another function
    EntryFactory(function="app:extract_person", status=Entry.Status.INVALIDATED)  # not live

    response = staff_client.get(reverse("extractor:entries-csv"), {"function": wanted.function})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="entries-\d{8}-\d{4}\.csv"', response["Content-Disposition"]
    )
    [row] = csv_rows(response)
    assert row["id"] == str(wanted.pk)
    assert row["key"] == wanted.key
    assert (row["schema"], row["schema_version"]) == ("app.schemas.Person", "v2")
    assert row["status"] == "live"
    assert row["created_at"] == "2025-04-30T12:00:00+00:00"
    assert (row["hits"], row["last_hit_at"]) == ("3", "2025-05-01T12:00:00+00:00")
    assert json.loads(row["input"]) == {"text": "Jason is 25", "model": "gpt-4o"}
    assert json.loads(row["output"]) == {"name": "Jason", "age": 25}


def test_entries_jsonl_keeps_json_values_as_json_and_the_lists_sort(staff_client):
    few = EntryFactory(hit_count=1, output={"name": "Few", "age": 1})
    many = EntryFactory(hit_count=9)
    never_hit = EntryFactory(hit_count=0, arguments=None, input_preview="")

    response = staff_client.get(reverse("extractor:entries-jsonl"), {"sort": "-hit_count"})

    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    rows = jsonl_rows(response)
    assert [row["id"] for row in rows] == [many.pk, few.pk, never_hit.pk]
    assert rows[1]["output"] == {"name": "Few", "age": 1}
    assert rows[2]["input"] is None
    assert rows[2]["last_hit_at"] is None
    assert list(rows[0]) == list(export.EntryRow._fields)


def test_entries_export_reads_in_keyset_batches_and_ignores_the_pages_cursor(
    staff_client, monkeypatch
):
    monkeypatch.setattr(export, "BATCH_SIZE", 2)
    entries = [EntryFactory(created_at=NOW - dt.timedelta(minutes=n)) for n in range(5)]

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(
            reverse("extractor:entries-csv"), {"sort": "-created_at", "after": "not-a-cursor"}
        )
        rows = csv_rows(response)

    assert [int(row["id"]) for row in rows] == [entry.pk for entry in entries]
    # Every read of the rows is bounded: a batch (2 + 1 to see whether more follow), or
    # the pager's one-row look back.
    reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "extractor_entry"."id"')]
    assert all(sql.endswith(("LIMIT 3", "LIMIT 1")) for sql in reads)
    assert sum(sql.endswith("LIMIT 3") for sql in reads) >= 3


def test_a_text_that_would_run_as_a_formula_gets_an_apostrophe_in_csv_only(staff_client):
    EntryFactory(function="=HYPERLINK(evil)", llm_model="@SUM(A1)", output=["-1"])
    query = {"state": "all"}

    [row] = csv_rows(staff_client.get(reverse("extractor:entries-csv"), query))
    [line] = jsonl_rows(staff_client.get(reverse("extractor:entries-jsonl"), query))

    assert row["function"] == "'=HYPERLINK(evil)"
    assert row["llm_model"] == "'@SUM(A1)"
    assert row["output"] == '["-1"]'  # JSON text starts with a bracket: nothing to guard
    assert (line["function"], line["llm_model"]) == ("=HYPERLINK(evil)", "@SUM(A1)")


def test_an_invalid_filter_is_a_400_that_names_it_not_an_export_of_everything(staff_client):
    EntryFactory()

    response = staff_client.get(reverse("extractor:entries-csv"), {"function": "no:such"})

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert "Nothing was exported" in text
    assert "Function: Select a valid choice." in text


@pytest.mark.parametrize("name", ["extractor:entries-csv", "extractor:calls-jsonl"])
def test_exports_are_for_staff_only(client, plain_user_client, name):
    url = reverse(name)
    assert plain_user_client.get(url).status_code == 403
    client.logout()
    response = client.get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_entries_page_links_to_the_export_of_its_filters_without_the_cursor(staff_client):
    EntryFactory(function="app:extract_person")
    EntryFactory(function="app:extract_person")

    html = staff_client.get(
        reverse("extractor:entries"), {"function": "app:extract_person", "after": "x"}
    ).content.decode()

    csv_url = reverse("extractor:entries-csv") + "?function=app%3Aextract_person"
    jsonl_url = reverse("extractor:entries-jsonl") + "?function=app%3Aextract_person"
    assert (
        f'<p class="export">Export these 2 as <a href="{csv_url}">CSV</a> · '
        f'<a href="{jsonl_url}">JSON Lines</a></p>'
    ) in html


# -- calls ---------------------------------------------------------------------------


@pytest.fixture
def log():
    CachedFunctionFactory(name="app:extract_a")
    entry = EntryFactory(function="app:extract_a")
    hit = CallFactory(entry=entry, created_at=NOW - dt.timedelta(hours=2))
    miss = CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        miss_reason=Call.MissReason.SCHEMA_CHANGED,
        reason_detail="v1 → v2",
        latency_ms=850.0,
        prompt_tokens=1200,
        cached_prompt_tokens=1024,
        completion_tokens=30,
        created_at=NOW - dt.timedelta(hours=1),
    )
    error = CallFactory(
        entry=None,
        function="app:extract_a",
        outcome=Call.Outcome.ERROR,
        error="+1 this failed",
        created_at=NOW,
    )
    return {"hit": hit, "miss": miss, "error": error}


def test_calls_csv_is_the_logs_selection_newest_first(staff_client, log):
    response = staff_client.get(reverse("extractor:calls-csv"), {"outcome": "miss"})

    assert response["Content-Disposition"].startswith('attachment; filename="calls-')
    [row] = csv_rows(response)
    assert row == {
        "id": str(log["miss"].pk),
        "created_at": "2025-05-01T11:00:00+00:00",
        "outcome": "miss",
        "miss_reason": "schema_changed",
        "miss_detail": "v1 → v2",
        "function": "app:extract_a",
        "llm_model": "gpt-4o-mini",
        "key": log["miss"].key,
        "entry_id": str(log["miss"].entry_id),
        "latency_ms": "850.0",
        "prompt_tokens": "1200",
        "completion_tokens": "30",
        "cached_prompt_tokens": "1024",
        "error": "",
    }


def test_calls_jsonl_crosses_batches_in_the_logs_order(staff_client, log, monkeypatch):
    monkeypatch.setattr(export, "BATCH_SIZE", 2)

    rows = jsonl_rows(staff_client.get(reverse("extractor:calls-jsonl")))

    assert [row["id"] for row in rows] == [log["error"].pk, log["miss"].pk, log["hit"].pk]
    assert rows[0]["entry_id"] is None
    assert rows[0]["error"] == "+1 this failed"


def test_calls_export_refuses_a_time_it_cannot_read(staff_client, log):
    response = staff_client.get(reverse("extractor:calls-csv"), {"since": "yesterday"})

    assert response.status_code == 400
    assert "From: Enter a date and time" in response.content.decode()


def test_the_calls_page_links_to_the_export_of_its_filters(staff_client, log):
    html = staff_client.get(reverse("extractor:calls"), {"outcome": "hit"}).content.decode()

    assert f'<a href="{reverse("extractor:calls-csv")}?outcome=hit">CSV</a>' in html
    assert "Export this 1 as" in html


def test_an_export_of_nothing_is_its_header(staff_client):
    assert body(staff_client.get(reverse("extractor:calls-csv"))).splitlines() == [
        ",".join(export.CallRow._fields)
    ]
