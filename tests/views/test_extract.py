"""The Extract page: runs the built-in extraction through the cache, in place."""

from __future__ import annotations

import pytest
from django.urls import reverse

from extractor.models import Call, Entry
from tests.conftest import TEST_API_KEY
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db

URL = reverse("extractor:extract")


def post(
    client,
    text="Jason is 25 years old",
    schema="UserDetail",
    model="gpt-4o-mini",  # a bare name is the listed openai/gpt-4o-mini
    refresh=None,
    **extra,
):
    data = {"text": text, "schema": schema, "model": model}
    if refresh is not None:
        data["refresh"] = refresh
    return client.post(URL, data, **extra)


def test_the_same_text_twice_is_a_miss_then_a_hit(staff_client, fake_llm):
    fake_llm.answer_with({"name": "Jason", "age": 25})

    first = post(staff_client)
    second = post(staff_client)

    assert 'data-testid="outcome">Miss<' in first.content.decode()
    assert 'data-testid="outcome">Hit<' in second.content.decode()
    assert "&quot;name&quot;: &quot;Jason&quot;" in second.content.decode()
    assert fake_llm.count == 1
    entry_link = reverse("extractor:entry", args=[second.context["result"].entry.pk])
    assert entry_link in second.content.decode()


def test_htmx_requests_get_only_the_panel(staff_client, fake_llm):
    response = post(staff_client, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert 'id="extract-panel"' in html
    assert "<html" not in html


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "   "}, "Enter some text to extract from."),
        ({"schema": "Invoice"}, "Select a valid choice."),
        ({"model": "gpt-99"}, "Select a valid choice."),
    ],
)
def test_bad_input_is_a_form_error_and_no_llm_call(staff_client, fake_llm, fields, message):
    response = post(staff_client, **fields)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert fake_llm.count == 0
    assert not Call.objects.exists()


def test_text_over_the_limit_is_refused_with_the_sizes(staff_client, fake_llm, settings):
    settings.EXTRACTOR_MAX_TEXT_BYTES = 1000

    response = post(staff_client, text="é" * 600)  # 1200 bytes in UTF-8

    assert "the limit is 1000" in response.content.decode().replace("\xa0", " ")
    assert fake_llm.count == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "rejected the API key"),
        (429, "rate limiting"),
        (500, "answered with an error (500)"),
    ],
)
def test_provider_failures_are_readable_and_recorded(
    staff_client, fake_llm, flush_records, status, message
):
    fake_llm.fail_next(status, message=f"boom {TEST_API_KEY}")

    response = post(staff_client)

    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert TEST_API_KEY not in html
    assert Call.objects.get().outcome == "error"


def test_no_api_key_says_what_to_set(staff_client, fake_llm, settings):
    settings.OPENAI_API_KEY = ""

    response = post(staff_client)

    assert "Set OPENAI_API_KEY" in response.content.decode()
    assert fake_llm.count == 0


def test_a_provider_timeout_is_readable(staff_client, fake_llm, settings):
    settings.EXTRACTOR_LLM_TIMEOUT = 0.3
    fake_llm.stall(1.0)

    response = post(staff_client)

    assert "did not answer within 0.3 seconds" in response.content.decode()


def test_output_that_never_fits_the_schema_shows_the_attempts_and_the_tokens_billed(
    staff_client, fake_llm
):
    fake_llm.answer_with({"name": "Jason", "age": "not a number"})
    fake_llm.report_usage(prompt_tokens=400, completion_tokens=11)

    response = post(staff_client)

    html = response.content.decode()
    assert "did not fit the schema after 3 attempts" in html
    assert fake_llm.count == 3
    assert 'data-testid="billed">3 attempts, 1,233 tokens billed<' in html
    call = Call.objects.get()
    assert (call.outcome, call.prompt_tokens, call.completion_tokens) == ("error", 1200, 33)


def test_the_raw_provider_error_is_kept_on_the_call_with_secrets_masked(staff_client, fake_llm):
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")

    html = post(staff_client).content.decode()

    call = Call.objects.get()
    assert "Error code: 401" in call.error
    assert "Incorrect API key provided: ***" in call.error
    assert TEST_API_KEY not in call.error
    # The page says it as a sentence and keeps the provider's words one click away.
    assert "rejected the API key (401)" in html
    assert 'data-testid="error-detail"' in html
    assert "Incorrect API key provided: ***" in html
    assert TEST_API_KEY not in html


def test_a_bad_request_says_what_the_provider_objected_to(staff_client, fake_llm):
    fake_llm.fail_next(400, message=f"This model's context is too long (key {TEST_API_KEY})")

    html = post(staff_client).content.decode()

    assert "refused the request as invalid (400): This model&#x27;s context is too long" in html
    assert TEST_API_KEY not in html


def test_a_provider_that_cannot_be_reached_is_readable(staff_client, fake_llm, settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"

    response = post(staff_client)

    assert "Could not reach the provider. Check OPENAI_BASE_URL" in response.content.decode()
    assert Call.objects.get().outcome == "error"


# -- refresh: skip the cache -----------------------------------------------------------


def test_refresh_calls_the_llm_past_the_cache_and_keeps_the_cached_value(staff_client, fake_llm):
    fake_llm.answer_with({"name": "Jason", "age": 25})
    post(staff_client)
    fake_llm.answer_with({"name": "Jason", "age": 26})

    response = post(staff_client, refresh="on")

    html = response.content.decode()
    assert fake_llm.count == 2
    assert 'data-testid="outcome">Bypass<' in html
    assert "recorded as a bypass" in html
    assert "the cached value is unchanged" in html
    assert "&quot;age&quot;: 26" in html
    assert Call.objects.order_by("-id").first().outcome == "bypass"
    entry = Entry.objects.get()
    assert entry.output == {"name": "Jason", "age": 25}
    assert 'name="refresh"' in html
    assert 'name="refresh" checked' not in html  # one run's choice, not sticky
    # Without the box the cache answers again, with the value it held.
    again = post(staff_client).content.decode()
    assert 'data-testid="outcome">Hit<' in again
    assert "&quot;age&quot;: 25" in again
    assert fake_llm.count == 2


def test_a_refresh_with_nothing_cached_stores_nothing(staff_client, fake_llm):
    html = post(staff_client, refresh="on").content.decode()

    assert "the cache holds nothing for this input yet" in html
    assert not Entry.objects.exists()


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    assert plain_user_client.get(URL).status_code == 403
