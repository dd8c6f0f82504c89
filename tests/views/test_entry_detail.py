"""One entry's page: input, output, key components, calls with miss reasons, history."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from extractor import extraction
from extractor.models import Call, Entry
from tests.factories import (
    CachedFunctionFactory,
    CallFactory,
    DocumentFactory,
    EntryFactory,
    InvalidationFactory,
    SchemaVersionFactory,
)

pytestmark = pytest.mark.django_db


def url(entry: Entry | int) -> str:
    return reverse("extractor:entry", args=[entry if isinstance(entry, int) else entry.pk])


def test_the_page_shows_input_output_and_key_components(staff_client):
    entry = EntryFactory(
        namespace="people",
        version="2024-06",
        arguments={"text": "Jason is 25 years old", "model": "gpt-4o-mini"},
        output={"name": "Jason", "age": 25},
        prompt_tokens=321,
        completion_tokens=45,
        latency_ms=987.0,
        hit_count=12,
    )

    response = staff_client.get(url(entry))

    html = response.content.decode()
    assert response.status_code == 200
    assert "&quot;text&quot;: &quot;Jason is 25 years old&quot;" in html
    assert "{\n  &quot;name&quot;: &quot;Jason&quot;,\n  &quot;age&quot;: 25\n}" in html
    for fact in (
        entry.key,
        entry.function,
        "people",
        entry.code_fingerprint,
        "2024-06",
        entry.schema_version.name,
        entry.schema_version.label,
        entry.schema_version.fingerprint,
        "openai · gpt-4o-mini",
        "321 in · 45 out",
        "987 ms",
    ):
        assert fact in html, fact
    assert "<dt>Hits</dt><dd>12</dd>" in html
    assert '<p class="lead">' in html


def test_the_page_shows_the_prompt_cache_tokens_and_links_the_document(staff_client):
    document = DocumentFactory(name="lease-2026.txt")
    entry = EntryFactory(
        document_sha=document.sha256,
        prompt_tokens=2400,
        cached_prompt_tokens=0,
        cache_write_tokens=2300,
        cache_write_1h_tokens=2300,
    )

    html = staff_client.get(url(entry)).content.decode()

    assert (
        '<dd data-testid="prompt-cache-tokens">0 read · 2,300 written'
        " (2,300 of them with the 1-hour TTL)</dd>"
    ) in html
    document_link = reverse("extractor:document", args=[document.pk])
    assert f'<a href="{document_link}">lease-2026.txt</a>' in html


def test_an_entry_without_a_document_names_none(staff_client):
    html = staff_client.get(url(EntryFactory())).content.decode()

    assert 'data-testid="entry-document"' not in html


def test_an_entry_first_seen_on_a_hit_says_its_arguments_were_not_recorded(staff_client):
    entry = EntryFactory(arguments=None, input_preview="Jason is 25")

    html = staff_client.get(url(entry)).content.decode()

    assert "The arguments were not recorded" in html
    assert "Cannot replay." in html


def test_every_call_of_the_entry_and_its_keys_misses_and_errors_newest_first(staff_client):
    entry = EntryFactory()
    miss = CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        miss_reason=Call.MissReason.SCHEMA_CHANGED,
        reason_detail="v1 → v2",
        latency_ms=900,
        prompt_tokens=120,
        completion_tokens=30,
    )
    hit = CallFactory(entry=entry, outcome=Call.Outcome.HIT)
    error = CallFactory(
        entry=None,
        key=entry.key,
        function=entry.function,
        outcome=Call.Outcome.ERROR,
        miss_reason=Call.MissReason.BACKEND_ERROR,
        reason_detail="ConnectionError: refused",
        error="ConnectionError: refused",
    )
    CallFactory()  # another entry's call

    response = staff_client.get(url(entry))

    assert [call.pk for call in response.context["calls"]] == [error.pk, hit.pk, miss.pk]
    html = response.content.decode()
    assert "Schema changed" in html
    assert "(v1 → v2)" in html
    assert "Backend error" in html
    assert "ConnectionError: refused" in html
    assert 'class="badge outcome-hit"' in html
    # In, read from and written to the provider's prompt cache, out.
    assert "120 / 0 / 0 / 30" in html
    assert "900 ms" in html
    assert "<dt>Computed because</dt><dd>Schema changed (v1 → v2)</dd>" in html


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (Call.MissReason.NEW_INPUT, "New input"),
        (Call.MissReason.CODE_CHANGED, "Code changed"),
        (Call.MissReason.MODEL_CHANGED, "Model changed"),
        (Call.MissReason.EXPIRED, "Expired"),
        (Call.MissReason.INVALIDATED, "Invalidated"),
        (Call.MissReason.CORRUPT, "Corrupt value"),
        (Call.MissReason.BACKEND_ERROR, "Backend error"),
    ],
)
def test_each_miss_reason_is_shown_in_words(staff_client, reason, label):
    entry = EntryFactory()
    CallFactory(entry=entry, outcome=Call.Outcome.MISS, miss_reason=reason)

    html = staff_client.get(url(entry)).content.decode()

    assert f'<td data-testid="miss-reason">{label}' in html


def test_a_model_change_made_by_real_calls_is_explained(staff_client, fake_llm, flush_records):
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o")
    flush_records()
    newer = Entry.objects.get(llm_model="gpt-4o")
    older = Entry.objects.get(llm_model="gpt-4o-mini")

    response = staff_client.get(url(newer))

    html = response.content.decode()
    assert "Model changed" in html
    assert "(gpt-4o-mini → gpt-4o)" in html
    assert [other.pk for other in response.context["history"]] == [older.pk]
    assert url(older) in html


def test_calls_are_paged_newest_first_with_a_link_to_the_call_log(staff_client):
    entry = EntryFactory()
    Call.objects.bulk_create(
        Call(entry=entry, key=entry.key, function=entry.function, outcome="hit", latency_ms=i)
        for i in range(201)
    )

    first = staff_client.get(url(entry))
    last = staff_client.get(url(entry), {"page": 3})

    assert len(first.context["calls"]) == 100
    html = first.content.decode()
    assert "Page 1 of 3" in html
    assert "/calls/?function=extractor.extraction%3Aextract_UserDetail" in html
    assert [call.latency_ms for call in last.context["calls"]] == [0]


def test_the_calls_of_another_function_under_the_same_key_are_not_the_entrys(staff_client):
    entry = EntryFactory()
    Call.objects.create(key=entry.key, function="other:function", outcome="miss", latency_ms=1)
    Call.objects.create(key=entry.key, function=entry.function, outcome="error", latency_ms=2)

    response = staff_client.get(url(entry))

    assert [call.function for call in response.context["calls"]] == [entry.function]


def test_history_links_other_values_of_the_same_question(staff_client):
    entry = EntryFactory(input_fingerprint="a" * 64)
    earlier = EntryFactory(input_fingerprint="a" * 64, status=Entry.Status.REPLACED)
    EntryFactory(input_fingerprint="b" * 64)

    response = staff_client.get(url(entry))

    assert [other.pk for other in response.context["history"]] == [earlier.pk]
    assert url(earlier) in response.content.decode()


def test_a_stale_entry_says_what_changed(staff_client):
    entry = EntryFactory()
    newer = SchemaVersionFactory()
    CachedFunctionFactory(name=entry.function, schema_version=newer, code_fingerprint="c" * 64)

    html = staff_client.get(url(entry)).content.decode()

    assert 'class="badge stale"' in html
    assert f"its schema is now {newer}" in html
    assert "its code changed" in html


def test_an_invalidated_entry_says_who_when_and_which_invalidation(staff_client, staff_user):
    invalidation = InvalidationFactory(requested_by=staff_user)
    entry = EntryFactory(status=Entry.Status.INVALIDATED, invalidation=invalidation)

    html = staff_client.get(url(entry)).content.decode()

    assert 'class="badge invalidated"' in html
    assert "by ada" in html
    assert reverse("extractor:invalidation", args=[invalidation.pk]) in html
    assert "Invalidate…" not in html


def test_a_replaced_entry_links_to_what_replaced_it(staff_client):
    old = EntryFactory(status=Entry.Status.REPLACED)
    new = EntryFactory(key=old.key)

    html = staff_client.get(url(old)).content.decode()

    assert 'class="badge replaced"' in html
    assert url(new) in html


def test_actions_replay_by_post_and_invalidate_through_the_confirmation_page(
    staff_client, fake_llm, flush_records
):
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    flush_records()
    entry = Entry.objects.get()

    html = staff_client.get(url(entry)).content.decode()

    assert f'method="post" action="{reverse("extractor:replay-start", args=[entry.pk])}"' in html
    assert "csrfmiddlewaretoken" in html
    assert "Calling the LLM…" in html
    assert f"{reverse('extractor:invalidate')}?action=entry&amp;target={entry.pk}" in html


def test_an_entry_whose_function_is_gone_says_why_it_cannot_be_replayed(staff_client):
    entry = EntryFactory(function="nowhere.module:gone")

    html = staff_client.get(url(entry)).content.decode()

    assert "Cannot replay." in html
    assert "nowhere.module:gone cannot be re-invoked" in html
    assert reverse("extractor:replay-start", args=[entry.pk]) not in html


def test_a_stale_entry_that_cannot_be_replayed_does_not_suggest_replaying_it(staff_client):
    CachedFunctionFactory(name="nowhere.module:gone", schema_version=SchemaVersionFactory())
    entry = EntryFactory(function="nowhere.module:gone")

    html = staff_client.get(url(entry)).content.decode()

    stale_note = html.split('data-testid="stale"')[1].split("</div>")[0]
    assert "Invalidate it to free the space." in stale_note
    assert "replay it" not in stale_note


def test_cached_output_is_escaped(staff_client):
    entry = EntryFactory(output={"name": "<script>alert(1)</script>", "age": 1})

    html = staff_client.get(url(entry)).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_unknown_entry_is_a_404(staff_client):
    assert staff_client.get(url(999999)).status_code == 404


def test_the_page_does_not_accept_posts(staff_client):
    entry = EntryFactory()

    assert staff_client.post(url(entry)).status_code == 405


def test_anonymous_users_are_sent_to_log_in(client: Client):
    entry = EntryFactory()

    response = client.get(url(entry))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    entry = EntryFactory()

    assert plain_user_client.get(url(entry)).status_code == 403
