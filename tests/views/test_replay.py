"""Replay: the entry's call made again for real, compared, then kept or replaced."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from extractor import extraction
from extractor.models import Call, Entry, Replay
from tests.conftest import TEST_API_KEY
from tests.factories import EntryFactory

pytestmark = pytest.mark.django_db

TEXT = "Jason is 25 years old"


@pytest.fixture
def cached_entry(fake_llm, flush_records) -> Entry:
    """An entry made by the real extraction, so replay re-invokes extract_UserDetail."""
    fake_llm.answer_with({"name": "Jason", "age": 25})
    extraction.extract(TEXT, "UserDetail", "gpt-4o-mini")
    flush_records()
    fake_llm.reset()
    return Entry.objects.get()


def start(client, entry: Entry, **extra):
    return client.post(reverse("extractor:replay-start", args=[entry.pk]), **extra)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_a_replay_calls_the_llm_records_a_replay_call_and_shows_the_diff(
    staff_client, fake_llm, cached_entry
):
    fake_llm.answer_with({"name": "Jason", "age": 26})

    response = start(staff_client, cached_entry)

    replay = Replay.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("extractor:replay", args=[replay.pk])
    assert fake_llm.count == 1
    assert replay.output == {"name": "Jason", "age": 26}
    call = Call.objects.get(outcome="replay")
    assert call.entry == cached_entry
    assert call.llm_model == "gpt-4o-mini"

    page = staff_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "1 field changed" in html
    assert '<tr class="changed">\n      <td><code>age</code></td>' in html
    assert "<code>25</code>" in html
    assert "<code>26</code>" in html
    assert '<tr class="same">\n      <td><code>name</code></td>' in html
    assert "Keep the cached value" in html
    assert "Replace with the fresh output" in html
    assert "120 in · 30 out" in html
    assert '<p class="lead">' in html


def test_an_identical_answer_says_so(staff_client, fake_llm, cached_entry):
    fake_llm.answer_with({"name": "Jason", "age": 25})

    response = start(staff_client, cached_entry, follow=True)

    assert "<strong>Identical</strong>" in response.content.decode()


def test_keeping_the_cached_value_changes_nothing_and_says_so(staff_client, fake_llm, cached_entry):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    page = start(staff_client, cached_entry, follow=True)
    replay = Replay.objects.get()
    keep = reverse("extractor:replay-keep", args=[replay.pk])
    assert f'action="{keep}"' in page.content.decode()

    response = staff_client.post(keep, follow=True)

    assert response.redirect_chain == [(reverse("extractor:entry", args=[cached_entry.pk]), 302)]
    assert messages_of(response) == [
        f"Kept the cached value of entry #{cached_entry.pk}; the replay's output was discarded."
    ]
    assert 'class="message success"' in response.content.decode()
    cached_entry.refresh_from_db()
    assert cached_entry.status == Entry.Status.LIVE
    assert cached_entry.output == {"name": "Jason", "age": 25}
    assert Entry.objects.count() == 1
    assert Replay.objects.get().accepted_at is None
    fake_llm.reset()
    assert extraction.extract(TEXT, "UserDetail", "gpt-4o-mini").model_dump() == {
        "name": "Jason",
        "age": 25,
    }
    assert fake_llm.count == 0


def test_keeping_after_the_replay_replaced_the_value_says_it_is_too_late(
    staff_client, fake_llm, cached_entry
):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    start(staff_client, cached_entry)
    replay = Replay.objects.get()
    staff_client.post(reverse("extractor:replay-accept", args=[replay.pk]))
    new = Entry.objects.get(status=Entry.Status.LIVE)

    response = staff_client.post(reverse("extractor:replay-keep", args=[replay.pk]), follow=True)

    assert response.redirect_chain == [(reverse("extractor:entry", args=[new.pk]), 302)]
    assert any("already replaced the cached value" in m for m in messages_of(response))
    assert Entry.objects.get(status=Entry.Status.LIVE) == new


def test_keeping_an_invalidated_entry_says_there_is_nothing_to_keep(
    staff_client, fake_llm, cached_entry
):
    start(staff_client, cached_entry)
    replay = Replay.objects.get()
    Entry.objects.filter(pk=cached_entry.pk).update(status=Entry.Status.INVALIDATED)

    response = staff_client.post(reverse("extractor:replay-keep", args=[replay.pk]), follow=True)

    assert any("no cached value to keep" in m for m in messages_of(response))
    assert not any(m.startswith("Kept") for m in messages_of(response))


def test_accepting_replaces_the_value_and_the_next_call_hits_it(
    staff_client, fake_llm, cached_entry, flush_records
):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    start(staff_client, cached_entry)
    replay = Replay.objects.get()

    response = staff_client.post(reverse("extractor:replay-accept", args=[replay.pk]), follow=True)

    new = Entry.objects.get(status=Entry.Status.LIVE)
    cached_entry.refresh_from_db()
    assert response.redirect_chain == [(reverse("extractor:entry", args=[new.pk]), 302)]
    assert any("The fresh output is now the cached value" in m for m in messages_of(response))
    assert cached_entry.status == Entry.Status.REPLACED
    assert new.pk != cached_entry.pk
    assert new.output == {"name": "Jason", "age": 26}
    assert new.key == cached_entry.key
    fake_llm.reset()
    again = extraction.extract(TEXT, "UserDetail", "gpt-4o-mini")
    assert again.model_dump() == {"name": "Jason", "age": 26}
    assert fake_llm.count == 0
    flush_records()
    assert Call.objects.order_by("-created_at", "-id").first().outcome == "hit"
    old_page = staff_client.get(reverse("extractor:entry", args=[cached_entry.pk]))
    assert reverse("extractor:entry", args=[new.pk]) in old_page.content.decode()


def test_a_replay_cannot_be_accepted_twice(staff_client, fake_llm, cached_entry):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    start(staff_client, cached_entry)
    replay = Replay.objects.get()
    accept = reverse("extractor:replay-accept", args=[replay.pk])
    staff_client.post(accept)

    response = staff_client.post(accept, follow=True)

    assert response.redirect_chain == [(reverse("extractor:entry", args=[cached_entry.pk]), 302)]
    assert any("already used" in m for m in messages_of(response))
    assert Entry.objects.filter(status=Entry.Status.LIVE).count() == 1
    page = staff_client.get(reverse("extractor:replay", args=[replay.pk])).content.decode()
    assert "The fresh output replaced the cached value" in page
    assert "Replace with the fresh output" not in page


def test_a_replay_of_an_invalidated_entry_cannot_replace_it(staff_client, fake_llm, cached_entry):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    start(staff_client, cached_entry)
    replay = Replay.objects.get()
    Entry.objects.filter(pk=cached_entry.pk).update(status=Entry.Status.INVALIDATED)

    page = staff_client.get(reverse("extractor:replay", args=[replay.pk])).content.decode()
    response = staff_client.post(reverse("extractor:replay-accept", args=[replay.pk]), follow=True)

    assert "cannot replace it" in page
    assert any("The entry is invalidated now" in m for m in messages_of(response))
    assert not Entry.objects.filter(status=Entry.Status.LIVE).exists()


def test_an_entry_whose_function_is_gone_says_why(staff_client, fake_llm):
    entry = EntryFactory(function="nowhere.module:gone")

    response = start(staff_client, entry, follow=True)

    assert response.redirect_chain == [(reverse("extractor:entry", args=[entry.pk]), 302)]
    html = response.content.decode()
    assert "The replay did not happen." in html
    assert "nowhere.module:gone cannot be re-invoked" in html
    assert "No module named" in html
    assert not Replay.objects.exists()
    assert fake_llm.count == 0


def test_an_entry_without_recorded_arguments_says_why(staff_client, fake_llm):
    entry = EntryFactory(arguments=None, input_preview="Jason is 25")

    response = start(staff_client, entry, follow=True)

    assert "arguments were not recorded" in response.content.decode()
    assert fake_llm.count == 0


def test_a_provider_failure_is_a_readable_message(staff_client, fake_llm, cached_entry):
    fake_llm.fail_next(500, message=f"boom {TEST_API_KEY}")

    response = start(staff_client, cached_entry, follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(reverse("extractor:entry", args=[cached_entry.pk]), 302)]
    assert "The provider answered with an error (500)." in html
    assert TEST_API_KEY not in html
    assert not Replay.objects.exists()
    cached_entry.refresh_from_db()
    assert cached_entry.status == Entry.Status.LIVE


def test_with_htmx_the_browser_is_sent_to_the_replay(staff_client, fake_llm, cached_entry):
    response = start(staff_client, cached_entry, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("extractor:replay", args=[Replay.objects.get().pk])


def test_cached_output_is_escaped_on_the_replay_page(staff_client, fake_llm, flush_records):
    fake_llm.answer_with({"name": "<script>alert(1)</script>", "age": 25})
    extraction.extract(TEXT, "UserDetail", "gpt-4o-mini")
    flush_records()
    fake_llm.answer_with({"name": "<script>alert(2)</script>", "age": 25})

    response = start(staff_client, Entry.objects.get(), follow=True)

    html = response.content.decode()
    # Both columns, in the diff table and in the JSON of both outputs.
    for cached_or_fresh in ("alert(1)", "alert(2)"):
        assert f"<script>{cached_or_fresh}</script>" not in html
        assert html.count(f"&lt;script&gt;{cached_or_fresh}&lt;/script&gt;") == 2


# -- access -------------------------------------------------------------------------


def test_posts_need_a_csrf_token(staff_user, cached_entry, fake_llm):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)

    assert start(client, cached_entry).status_code == 403
    assert fake_llm.count == 0
    replay = Replay.objects.create(entry=cached_entry, output=cached_entry.output)
    assert client.post(reverse("extractor:replay-keep", args=[replay.pk])).status_code == 403


def test_get_on_post_only_urls_is_405(staff_client, cached_entry, fake_llm):
    start(staff_client, cached_entry)
    replay = Replay.objects.get()

    start_url = reverse("extractor:replay-start", args=[cached_entry.pk])
    assert staff_client.get(start_url).status_code == 405
    assert staff_client.get(reverse("extractor:replay-accept", args=[replay.pk])).status_code == 405
    assert staff_client.get(reverse("extractor:replay-keep", args=[replay.pk])).status_code == 405
    assert staff_client.post(reverse("extractor:replay", args=[replay.pk])).status_code == 405


def test_unknown_ids_are_404(staff_client):
    assert staff_client.post(reverse("extractor:replay-start", args=[999999])).status_code == 404
    assert staff_client.get(reverse("extractor:replay", args=[999999])).status_code == 404
    assert staff_client.post(reverse("extractor:replay-accept", args=[999999])).status_code == 404
    assert staff_client.post(reverse("extractor:replay-keep", args=[999999])).status_code == 404


def access_urls(entry: Entry, replay: Replay) -> list[tuple[str, str]]:
    return [
        ("post", reverse("extractor:replay-start", args=[entry.pk])),
        ("get", reverse("extractor:replay", args=[replay.pk])),
        ("post", reverse("extractor:replay-accept", args=[replay.pk])),
        ("post", reverse("extractor:replay-keep", args=[replay.pk])),
    ]


def test_anonymous_users_are_sent_to_log_in(client):
    entry = EntryFactory()
    replay = Replay.objects.create(entry=entry, output=entry.output)

    for method, address in access_urls(entry, replay):
        response = getattr(client, method)(address)
        assert response.status_code == 302, address
        assert response["Location"].startswith(reverse("login"))
    assert Replay.objects.count() == 1


def test_users_who_are_not_staff_are_refused(plain_user_client):
    entry = EntryFactory()
    replay = Replay.objects.create(entry=entry, output=entry.output)

    for method, address in access_urls(entry, replay):
        assert getattr(plain_user_client, method)(address).status_code == 403, address
    replay.refresh_from_db()
    assert replay.accepted_at is None


def test_an_entry_whose_arguments_held_a_masked_secret_is_not_replayed(
    staff_client, fake_llm, flush_records
):
    extraction.extract("Use key sk-proj-" + "Ab3" * 16 + " for Jason", "UserDetail", "gpt-4o-mini")
    flush_records()
    entry = Entry.objects.get()
    fake_llm.reset()

    response = start(staff_client, entry, follow=True)

    assert fake_llm.count == 0
    assert not Replay.objects.exists()
    assert any("masked" in message for message in messages_of(response))


def test_an_entry_whose_arguments_are_in_their_typed_key_form_is_not_replayed(
    staff_client, fake_llm
):
    entry = EntryFactory(
        arguments={"text": {"$decimal": "19.9"}, "model": "gpt-4o-mini"},
    )

    response = start(staff_client, entry, follow=True)

    assert fake_llm.count == 0
    assert not Replay.objects.exists()
    assert any("key form" in message for message in messages_of(response))


def test_the_replay_page_shows_the_provider_prompt_cache_apart(
    staff_client, fake_llm, cached_entry
):
    fake_llm.report_usage(prompt_tokens=5000, completion_tokens=30, cached_tokens=2400)

    response = start(staff_client, cached_entry)

    html = staff_client.get(response["Location"]).content.decode()
    assert "5000 in · 30 out" in html
    assert '<dd data-testid="replay-prompt-cache">read 2,400 tokens</dd>' in html
