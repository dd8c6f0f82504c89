"""Usage is normalised to inclusive counting, whatever the provider: prompt_tokens
holds every input token, cache reads and writes counted once, apart."""

from __future__ import annotations

import anthropic
import instructor
import pytest
from anthropic.types import CacheCreation
from anthropic.types import Usage as AnthropicUsage
from openai.types import CompletionUsage
from openai.types.completion_usage import PromptTokensDetails
from openai.types.responses import ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from extractor.caching import capture_calls, instructor_cache
from extractor.caching.usage import Usage, usage_from
from tests.caching.support import UserDetail, computed

BOOK = "It is a truth universally acknowledged... " * 200  # 2,100 fake tokens


def test_anthropic_reads_and_writes_are_added_to_its_input_tokens_once():
    # Anthropic's input_tokens leaves out what it read from and wrote to its cache.
    usage = AnthropicUsage(
        input_tokens=50,
        output_tokens=40,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=300,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=100, ephemeral_1h_input_tokens=200),
    )

    assert usage_from(usage) == Usage(
        prompt_tokens=2350,
        completion_tokens=40,
        cached_prompt_tokens=2000,
        cache_write_tokens=300,
        cache_write_1h_tokens=200,
    )


def test_anthropic_writes_without_a_ttl_split_are_five_minute_writes():
    usage = AnthropicUsage(input_tokens=50, output_tokens=40, cache_creation_input_tokens=300)

    normalised = usage_from(usage)

    assert (normalised.prompt_tokens, normalised.cache_write_tokens) == (350, 300)
    assert normalised.cache_write_1h_tokens == 0


def test_openai_cached_tokens_are_already_inside_prompt_tokens():
    usage = CompletionUsage(
        prompt_tokens=2500,
        completion_tokens=40,
        total_tokens=2540,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=2000),
    )

    assert usage_from(usage) == Usage(
        prompt_tokens=2500, completion_tokens=40, cached_prompt_tokens=2000
    )


def test_openai_cache_writes_where_reported_are_inside_prompt_tokens_too():
    usage = CompletionUsage(
        prompt_tokens=2500,
        completion_tokens=40,
        total_tokens=2540,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=0, cache_write_tokens=2400),
    )

    assert usage_from(usage) == Usage(
        prompt_tokens=2500, completion_tokens=40, cache_write_tokens=2400
    )


def test_openai_responses_api_input_tokens_are_inclusive_too():
    # It names its fields like Anthropic's, but counts like chat completions.
    usage = ResponseUsage(
        input_tokens=2500,
        input_tokens_details=InputTokensDetails(cached_tokens=2000, cache_write_tokens=0),
        output_tokens=40,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        total_tokens=2540,
    )

    assert usage_from(usage) == Usage(
        prompt_tokens=2500, completion_tokens=40, cached_prompt_tokens=2000
    )


def wrong_then_right(body):
    """An answer that fails validation on the first attempt only."""
    first = not any(message.get("role") == "assistant" for message in body["messages"])
    return {"name": "Jason", "age": "not a number" if first else 25}


def test_an_openai_retry_records_what_every_attempt_consumed(client, fake_llm, memory_backend):
    fake_llm.answer_with(wrong_then_right)
    fake_llm.report_usage(prompt_tokens=200, completion_tokens=15, cached_tokens=64)

    @instructor_cache(backend=memory_backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            max_retries=1,
            messages=[{"role": "user", "content": text}],
        )

    with capture_calls() as calls:
        result = extract("Jason is 25")

    assert fake_llm.count == 2
    # Instructor adds each attempt's usage into the returned completion's: what is
    # recorded is the sum over both attempts, not the last attempt's alone.
    assert result._raw_response.usage.prompt_tokens == 400
    (miss,) = computed(calls)
    assert miss.tokens == Usage(prompt_tokens=400, completion_tokens=30, cached_prompt_tokens=128)


def test_an_anthropic_retry_records_the_first_attempts_write_and_the_seconds_read(
    fake_llm, memory_backend
):
    claude = instructor.from_anthropic(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=fake_llm.anthropic_base_url)
    )
    fake_llm.answer_with(wrong_then_right)

    @instructor_cache(backend=memory_backend)
    def extract(question: str) -> UserDetail:
        return claude.chat.completions.create(
            model="claude-haiku-4-5",
            max_tokens=1000,
            max_retries=1,
            response_model=UserDetail,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": BOOK,
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        },
                        {"type": "text", "text": question},
                    ],
                }
            ],
        )

    with capture_calls() as calls:
        extract("Who is the heroine?")

    assert fake_llm.count == 2
    book = len(BOOK) // 4
    (miss,) = computed(calls)
    # The first attempt wrote the book to the cache (1-hour TTL), the retry read it;
    # each attempt also sent 120 fresh tokens of its own.
    assert miss.tokens == Usage(
        prompt_tokens=2 * (120 + book),
        completion_tokens=2 * 30,
        cached_prompt_tokens=book,
        cache_write_tokens=book,
        cache_write_1h_tokens=book,
    )


@pytest.mark.parametrize("missing", [None, object()])
def test_no_usage_is_zero_usage(missing):
    assert usage_from(missing) == Usage()
