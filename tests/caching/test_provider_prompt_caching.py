"""Provider prompt caching is read off the real clients' responses: OpenAI's cached
tokens and Anthropic's cache reads and writes, beside this cache's own hits."""

from __future__ import annotations

import anthropic
import instructor
import pytest

from extractor.caching import capture_calls, instructor_cache
from extractor.models import Call, Entry
from extractor.selectors.stats import overview
from tests.caching.support import UserDetail

pytestmark = pytest.mark.django_db

BOOK = "It is a truth universally acknowledged... " * 200


@pytest.fixture
def claude(fake_llm):
    return instructor.from_anthropic(
        anthropic.Anthropic(
            api_key="sk-ant-test", base_url=fake_llm.anthropic_base_url, max_retries=0
        )
    )


def cached_character_extraction(claude, backend):
    @instructor_cache(backend=backend)
    def extract_from_book(question: str) -> UserDetail:
        return claude.chat.completions.create(
            model="claude-3-5-haiku-latest",
            max_tokens=1000,
            response_model=UserDetail,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": BOOK, "cache_control": {"type": "ephemeral"}},
                        {"type": "text", "text": question},
                    ],
                }
            ],
        )

    return extract_from_book


def test_anthropic_cache_reads_and_writes_are_recorded_as_prompt_tokens(
    claude, fake_llm, tmp_path, flush_records
):
    extract = cached_character_extraction(claude, f"disk://{tmp_path}/c")
    fake_llm.answer_with({"name": "Elizabeth", "age": 20})
    fake_llm.report_usage(
        prompt_tokens=2500, completion_tokens=40, cached_tokens=2048, cache_write_tokens=100
    )

    with capture_calls() as calls:
        extract("Who is the heroine?")
        extract("Who is the heroine?")
    flush_records()

    (miss,) = [call for call in calls if not isinstance(call, tuple)]
    usage = miss.envelope.usage
    assert (usage.prompt_tokens, usage.cached_prompt_tokens, usage.cache_write_tokens) == (
        2500,
        2048,
        100,
    )
    request = fake_llm.requests[0]
    assert request["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert fake_llm.count == 1
    row = Call.objects.get(outcome="miss")
    assert (row.llm_provider, row.llm_model, row.cached_prompt_tokens) == (
        "anthropic",
        "claude-3-5-haiku-latest",
        2048,
    )
    assert Entry.objects.get().prompt_tokens == 2500


def test_the_overview_prices_both_caches(claude, fake_llm, tmp_path, flush_records, settings):
    settings.EXTRACTOR_PRICES = {"claude-3-5-haiku-latest": (0.80, 0.08, 4.00)}
    extract = cached_character_extraction(claude, f"disk://{tmp_path}/c")
    fake_llm.report_usage(prompt_tokens=2500, completion_tokens=40, cached_tokens=2000)

    extract("Who is the heroine?")
    extract("Who is the heroine?")
    flush_records()

    total = overview(days=None).total
    # The provider billed 2,000 prompt tokens at the cached price: (0.80 - 0.08) per million.
    assert total.provider_cached_tokens == 2000
    assert total.provider_cost_saved == pytest.approx(2000 * 0.72 / 1_000_000)
    # Our hit saved the whole call: 500 fresh + 2,000 cached prompt tokens and 40 out.
    assert total.cost_saved == pytest.approx((500 * 0.80 + 2000 * 0.08 + 40 * 4.00) / 1_000_000)
