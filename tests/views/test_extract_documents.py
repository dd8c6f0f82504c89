"""The Extract page with a context document: pasted or uploaded, size-limited, and the
two caches shown apart ("Response cache: miss · Provider prompt cache: wrote N tokens").

The prompt-cache figures come from the recorded Call's cache_write_tokens and
cached_prompt_tokens (the recorder's part of issue 10).
"""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from extractor.models import Call, Document
from tests.fake_llm import estimate_tokens

pytestmark = pytest.mark.django_db

URL = reverse("extractor:extract")
CONTRACT = " ".join(f"Clause {n}: the tenant pays rent on day {n % 28 + 1}." for n in range(400))
DOC_TOKENS = f"{estimate_tokens(CONTRACT):,}"
QUESTIONS = ["Who is the tenant?", "Who is the landlord?", "When is the rent due?"]
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}


@pytest.fixture(params=list(MODELS))
def model(request, fake_llm, settings) -> str:
    fake_llm.serve_anthropic(settings)
    return MODELS[request.param]


def ask(client, text, model="openai/gpt-4o-mini", **fields):
    data = {"text": text, "schema": "UserDetail", "model": model, **fields}
    return client.post(URL, data)


def layers(response) -> str:
    """The result's cache line, whitespace folded."""
    html = response.content.decode()
    line = re.search(r'data-testid="cache-layers">(.*?)</p>', html, re.S)
    assert line, "no cache line on the page"
    return " ".join(re.sub(r"<[^>]+>", "", line.group(1)).split())


def test_three_questions_on_one_document_show_one_write_and_two_reads(
    staff_client, model, fake_llm
):
    shown = [layers(ask(staff_client, q, model, document=CONTRACT)) for q in QUESTIONS]

    if model.startswith("anthropic/"):
        first = f"Response cache: miss · Provider prompt cache: wrote {DOC_TOKENS} tokens"
    else:  # OpenAI reports no writes: its first sight of the prefix caches it
        first = "Response cache: miss · Provider prompt cache: nothing read or written"
    read = f"Response cache: miss · Provider prompt cache: read {DOC_TOKENS} tokens"
    assert shown == [first, read, read]
    assert fake_llm.count == 3
    assert Document.objects.count() == 1


def test_a_repeated_question_is_a_response_cache_hit_and_asks_the_provider_nothing(
    staff_client, model, fake_llm
):
    ask(staff_client, QUESTIONS[0], model, document=CONTRACT)
    again = ask(staff_client, QUESTIONS[0], model, document=CONTRACT)

    assert layers(again) == "Response cache: hit · Provider prompt cache: not asked (no LLM call)"
    assert fake_llm.count == 1


def test_an_uploaded_txt_file_is_the_document_named_after_the_file(staff_client, fake_llm):
    upload = SimpleUploadedFile("lease-2025.txt", CONTRACT.encode(), content_type="text/plain")

    response = ask(staff_client, QUESTIONS[0], document_file=upload)

    document = Document.objects.get()
    assert (document.name, document.text) == ("lease-2025", CONTRACT)
    assert fake_llm.requests[0]["messages"][0]["content"] == CONTRACT
    html = response.content.decode()
    assert "Context document: <strong>lease-2025</strong>" in html
    # Ready for the next question: the form now holds the document as text.
    assert response.context["form"].initial["document"] == CONTRACT


def test_the_one_hour_ttl_is_sent_and_shown(staff_client, fake_llm, settings, flush_records):
    fake_llm.serve_anthropic(settings)

    response = ask(
        staff_client, QUESTIONS[0], MODELS["anthropic"], document=CONTRACT, cache_ttl="1h"
    )

    assert fake_llm.requests[0]["system"][0]["cache_control"]["ttl"] == "1h"
    assert "with the 1-hour TTL" in layers(response)
    assert "(1 hour TTL)" in response.content.decode()


def test_a_document_below_the_minimum_is_sent_unmarked_and_the_page_says_so(
    staff_client, model, fake_llm
):
    response = ask(staff_client, QUESTIONS[0], model, document="The tenant is Ada. " * 20)

    request = fake_llm.requests[0]
    assert "prompt_cache_key" not in request
    assert all("cache_control" not in block for block in request.get("system", []))
    html = response.content.decode()
    assert 'data-testid="below-minimum"' in html
    assert "an estimate, bytes ÷ 4" in html
    assert "sent unmarked" in html


def test_an_oversized_document_is_a_form_error(staff_client, fake_llm, settings):
    settings.EXTRACTOR_MAX_DOCUMENT_BYTES = 1000

    pasted = ask(staff_client, QUESTIONS[0], document="x" * 1001)
    uploaded = ask(
        staff_client, QUESTIONS[0], document_file=SimpleUploadedFile("big.txt", b"x" * 1001)
    )

    for response in (pasted, uploaded):
        assert response.status_code == 200
        assert "The context document is 1001\xa0bytes; the limit is 1000\xa0bytes" in (
            response.content.decode()
        )
    assert fake_llm.count == 0
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            SimpleUploadedFile("lease.pdf", b"%PDF-1.7"),
            "Upload the context document as a .txt file.",
        ),
        (SimpleUploadedFile("lease.txt", b"\xff\xfe\x00"), "The file is not UTF-8 text"),
    ],
)
def test_an_upload_that_is_not_utf8_text_is_a_form_error(staff_client, fake_llm, upload, message):
    response = ask(staff_client, QUESTIONS[0], document_file=upload)

    assert message in response.content.decode()
    assert fake_llm.count == 0


def test_a_missing_anthropic_key_is_the_sentence_that_names_it(staff_client, fake_llm, settings):
    settings.ANTHROPIC_API_KEY = ""

    response = ask(staff_client, QUESTIONS[0], MODELS["anthropic"])

    assert "Set ANTHROPIC_API_KEY in the environment" in response.content.decode()
    assert fake_llm.count == 0


def test_the_call_keeps_the_providers_own_model_string(staff_client, fake_llm, settings):
    fake_llm.serve_anthropic(settings)

    ask(staff_client, QUESTIONS[0], MODELS["anthropic"])

    call = Call.objects.get()
    assert (call.llm_provider, call.llm_model) == ("anthropic", "claude-haiku-4-5")
