"""The overview's two layers with provider cache writes: the response cache's hits and
the provider's prompt cache, each saving apart, the write premium taken off the latter."""

from __future__ import annotations

import re

import anthropic
import instructor
import pytest
from django.urls import reverse

from extractor.caching import instructor_cache
from extractor.models import Call
from extractor.selectors.stats import overview
from tests.caching.support import UserDetail
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db

BOOK = "It is a truth universally acknowledged... " * 200
B = len(BOOK) // 4  # the book's tokens, as the fake provider counts them
# claude-haiku-4-5: input, cached input, 5-minute write, 1-hour write, output.
PRICES = {"claude-haiku-4-5": (1.0, 0.1, 1.25, 2.0, 5.0)}


def test_three_questions_on_one_document_write_once_and_read_twice(
    fake_llm, flush_records, settings
):
    settings.EXTRACTOR_PRICES = PRICES
    claude = instructor.from_anthropic(
        anthropic.Anthropic(
            api_key="sk-ant-test", base_url=fake_llm.anthropic_base_url, max_retries=0
        )
    )

    @instructor_cache
    def ask(question: str) -> UserDetail:
        return claude.chat.completions.create(
            model="claude-haiku-4-5",
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

    for question in ("Who is the heroine?", "Who is her father?", "Who does she marry?"):
        ask(question)
    ask("Who is the heroine?")  # a response-cache hit
    flush_records()

    total = overview(days=1).total
    assert (total.hits, total.misses) == (1, 3)
    assert (total.provider_cached_tokens, total.provider_write_tokens) == (2 * B, B)
    assert total.provider_write_1h_tokens == 0
    # Two reads at 0.9 under the input price, one 5-minute write at 0.25 above it.
    assert total.provider_write_premium == pytest.approx(B * 0.25 / 1e6)
    assert total.provider_cost_saved == pytest.approx((2 * B * 0.9 - B * 0.25) / 1e6)
    # The hit saved the first call as it was billed: 120 fresh tokens, the write, 30 out.
    assert total.cost_saved == pytest.approx((120 * 1.0 + B * 1.25 + 30 * 5.0) / 1e6)


def test_a_write_never_read_shows_a_net_loss_on_the_page(client, django_user_model, settings):
    settings.EXTRACTOR_PRICES = PRICES
    client.force_login(django_user_model.objects.create_user(username="ada", is_staff=True))
    entry = EntryFactory(
        llm_model="claude-haiku-4-5",
        prompt_tokens=3120,
        cache_write_tokens=3000,
        cache_write_1h_tokens=1000,
        completion_tokens=30,
    )
    CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        llm_model="claude-haiku-4-5",
        prompt_tokens=3120,
        cache_write_tokens=3000,
        cache_write_1h_tokens=1000,
        completion_tokens=30,
    )
    CallFactory(
        entry=None,
        outcome=Call.Outcome.MISS,
        schema_version=entry.schema_version,
        llm_model="claude-haiku-4-5",
        prompt_tokens=3120,
        cached_prompt_tokens=1000,
    )

    html = client.get(reverse("extractor:overview")).content.decode()

    def figure(name: str) -> str:
        match = re.search(rf'data-testid="{name}">([^<]*)<', html)
        assert match, name
        return match.group(1).strip()

    assert figure("provider-cached-tokens") == "1,000"
    assert figure("provider-write-tokens") == "3,000"
    assert "(1,000 for 1 hour)" in html
    # Premium: 2,000 x 0.25 + 1,000 x 1.0 = 1,500 per million; reads saved 1,000 x 0.9.
    assert figure("provider-write-premium") == "$0.0015"
    assert figure("provider-cost-saved") == "$-0.0006"
