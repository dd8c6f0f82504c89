"""The built-in extraction with a context document: what each provider is sent, and
what the provider's prompt cache reports, apart from the response cache.

The fake provider simulates both caches as the real APIs report them (tests/fake_llm.py):
Anthropic writes a marked block on first sight and reads it after, counted apart from
input_tokens; OpenAI reads a long first message it has seen, counted inside
prompt_tokens. The Call columns cache_write_tokens, cache_write_1h_tokens and
document_sha are filled by the recorder (the "usage" work of issue 10).
"""

from __future__ import annotations

import pytest

from extractor import extraction
from extractor.llm import LLMNotConfigured, describe_provider_error, parse_model
from extractor.models import Call, Document, Entry
from extractor.services.documents import document_sha, document_store
from tests.fake_llm import ANTHROPIC_TEST_KEY, estimate_tokens
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db

# About 5,000 tokens by the bytes / 4 estimate: above every provider's minimum.
CONTRACT = " ".join(f"Clause {n}: the tenant pays rent on day {n % 28 + 1}." for n in range(400))
DOC_TOKENS = estimate_tokens(CONTRACT)
QUESTIONS = ["Who is the tenant?", "Who is the landlord?", "When is the rent due?"]
# The fake's fixed part of every prompt: the question and the instructions.
BASE_PROMPT = 120

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}


@pytest.fixture(params=list(MODELS))
def model(request, fake_llm, settings) -> str:
    fake_llm.serve_anthropic(settings)
    return MODELS[request.param]


@pytest.fixture
def contract() -> Document:
    return document_store("lease.txt", CONTRACT)


def calls() -> list[Call]:
    return list(Call.objects.order_by("created_at", "id"))


def test_three_questions_on_one_document_write_once_then_read(
    model, contract, fake_llm, flush_records
):
    for question in QUESTIONS:
        extraction.extract(question, "UserDetail", model, document=contract)
    flush_records()

    rows = calls()
    assert [row.outcome for row in rows] == ["miss"] * 3  # different questions
    assert fake_llm.count == 3
    reads = [row.cached_prompt_tokens for row in rows]
    writes = [row.cache_write_tokens for row in rows]
    if model.startswith("anthropic/"):
        assert writes == [DOC_TOKENS, 0, 0]
    else:  # OpenAI caches by itself and reports no writes
        assert writes == [0, 0, 0]
    assert reads == [0, DOC_TOKENS, DOC_TOKENS]
    # Normalised, inclusive: Anthropic's additive input_tokens + reads + writes, and
    # OpenAI's prompt_tokens that already hold the reads, come to the same total.
    assert [row.prompt_tokens for row in rows] == [BASE_PROMPT + DOC_TOKENS] * 3
    assert {row.document_sha for row in rows} == {contract.sha256}
    assert set(Entry.objects.values_list("document_sha", flat=True)) == {contract.sha256}


def test_a_repeated_question_is_a_response_cache_hit_with_no_request(
    model, contract, fake_llm, flush_records
):
    extraction.extract(QUESTIONS[0], "UserDetail", model, document=contract)
    extraction.extract(QUESTIONS[0], "UserDetail", model, document=contract.sha256)
    flush_records()

    assert fake_llm.count == 1
    assert [row.outcome for row in calls()] == ["miss", "hit"]


def test_the_document_is_part_of_the_response_cache_key(model, contract, fake_llm):
    other = document_store("", CONTRACT + " Clause 401: no pets.")

    extraction.extract(QUESTIONS[0], "UserDetail", model, document=contract)
    extraction.extract(QUESTIONS[0], "UserDetail", model, document=other)
    extraction.extract(QUESTIONS[0], "UserDetail", model)

    assert fake_llm.count == 3


def test_anthropic_gets_the_document_as_a_marked_system_block_before_the_question(
    contract, fake_llm, settings
):
    fake_llm.serve_anthropic(settings)

    extraction.extract(QUESTIONS[0], "UserDetail", MODELS["anthropic"], document=contract)

    request = fake_llm.requests[0]
    assert request["model"] == "claude-haiku-4-5"
    assert request["system"][0] == {
        "type": "text",
        "text": CONTRACT,
        "cache_control": {"type": "ephemeral"},
    }
    assert "cache_control" not in request["system"][1]  # the instructions
    assert request["messages"] == [{"role": "user", "content": QUESTIONS[0]}]
    # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
    sent = fake_llm.headers[0]
    assert ANTHROPIC_TEST_KEY in (sent.get("x-api-key"), sent.get("authorization", "")[7:])


def test_a_one_hour_ttl_marks_the_block_and_the_write_is_recorded_as_such(
    contract, fake_llm, settings, flush_records
):
    fake_llm.serve_anthropic(settings)

    extraction.extract(
        QUESTIONS[0], "UserDetail", MODELS["anthropic"], document=contract, cache_ttl="1h"
    )
    flush_records()

    control = fake_llm.requests[0]["system"][0]["cache_control"]
    assert control == {"type": "ephemeral", "ttl": "1h"}
    call = Call.objects.get()
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (DOC_TOKENS, DOC_TOKENS)


def test_the_ttl_is_not_part_of_the_response_cache_key(contract, fake_llm, settings):
    fake_llm.serve_anthropic(settings)

    extraction.extract(QUESTIONS[0], "UserDetail", MODELS["anthropic"], document=contract)
    extraction.extract(
        QUESTIONS[0], "UserDetail", MODELS["anthropic"], document=contract, cache_ttl="1h"
    )

    assert fake_llm.count == 1


def test_an_unknown_ttl_is_refused(contract):
    with pytest.raises(ValueError, match="cache_ttl must be one of 5m, 1h"):
        extraction.extract(
            "q", "UserDetail", "openai/gpt-4o-mini", document=contract, cache_ttl="1d"
        )


def test_openai_gets_the_document_first_with_its_hash_as_prompt_cache_key(contract, fake_llm):
    extraction.extract(QUESTIONS[0], "UserDetail", MODELS["openai"], document=contract)

    request = fake_llm.requests[0]
    assert request["model"] == "gpt-4o-mini"
    assert request["messages"][0] == {"role": "system", "content": CONTRACT}
    assert request["messages"][-1] == {"role": "user", "content": QUESTIONS[0]}
    assert request["prompt_cache_key"] == contract.sha256


def test_a_document_below_the_minimum_is_sent_unmarked(model, fake_llm, flush_records):
    short = document_store("", "The tenant is Ada Lovelace. " * 20)  # about 140 tokens

    extraction.extract(QUESTIONS[0], "UserDetail", model, document=short)
    extraction.extract(QUESTIONS[1], "UserDetail", model, document=short)
    flush_records()

    for request in fake_llm.requests:
        assert "prompt_cache_key" not in request
        assert all("cache_control" not in block for block in request.get("system", []))
    assert {(c.cached_prompt_tokens, c.cache_write_tokens) for c in calls()} == {(0, 0)}


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("openai/gpt-4o-mini", 1024),
        ("gpt-4.1", 1024),
        ("anthropic/claude-sonnet-4-5", 1024),
        ("anthropic/claude-sonnet-4-5-20250929", 1024),
        ("anthropic/claude-haiku-4-5", 4096),
        ("anthropic/claude-3-5-haiku-latest", 2048),
    ],
)
def test_the_minimum_cacheable_size_follows_the_provider_and_model(model, minimum):
    assert extraction.minimum_cacheable_tokens(model) == minimum


def test_a_bare_model_name_is_openai_and_shares_its_entry(fake_llm):
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "openai/gpt-4o-mini")

    assert fake_llm.count == 1


def test_a_gateways_model_name_goes_to_the_openai_compatible_endpoint(fake_llm):
    assert str(parse_model("meta-llama/Llama-3-8B")) == "openai/meta-llama/Llama-3-8B"

    extraction.extract("Jason is 25", "UserDetail", "openai/anthropic/claude-3.5-sonnet")

    assert fake_llm.requests[0]["model"] == "anthropic/claude-3.5-sonnet"  # chat completions


def test_a_missing_anthropic_key_names_the_variable_to_set(fake_llm, settings):
    settings.ANTHROPIC_API_KEY = ""

    with pytest.raises(LLMNotConfigured, match="Set ANTHROPIC_API_KEY in the environment"):
        extraction.extract("Jason is 25", "UserDetail", "anthropic/claude-haiku-4-5")
    assert fake_llm.count == 0


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (401, "The provider rejected the API key (401). Check ANTHROPIC_API_KEY."),
        (400, "The provider refused the request as invalid (400): prompt is too long"),
        (529, "The provider is overloaded (529). Wait a moment and try again."),
    ],
)
def test_anthropic_errors_are_described_with_its_own_settings(fake_llm, settings, status, said):
    fake_llm.serve_anthropic(settings)
    fake_llm.fail_next(status, message="prompt is too long")

    # Instructor wraps the provider's error; the description reads the one beneath.
    with pytest.raises(Exception, match="prompt is too long") as raised:
        extraction.extract("Jason is 25", "UserDetail", "anthropic/claude-haiku-4-5")

    assert describe_provider_error(raised.value) == said


def test_an_unreachable_anthropic_endpoint_names_its_setting(fake_llm, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(Exception, match="Connection error") as raised:
        extraction.extract("Jason is 25", "UserDetail", "anthropic/claude-haiku-4-5")

    assert "Check ANTHROPIC_BASE_URL" in describe_provider_error(raised.value)


def test_a_document_is_stored_once_by_hash_under_its_first_name():
    first = document_store("lease.txt", CONTRACT)
    again = document_store("copy.txt", CONTRACT)
    pasted = document_store("", "Ada Lovelace wrote the first program for the Analytical Engine.")

    assert (again.pk, again.name) == (first.pk, "lease.txt")
    assert (first.sha256, first.size_bytes) == (document_sha(CONTRACT), len(CONTRACT))
    assert pasted.name == "Ada Lovelace wrote the first program for the…"
    assert Document.objects.count() == 2
