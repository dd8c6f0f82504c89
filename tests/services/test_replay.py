"""services.replay reads usage through the library: an Anthropic-backed entry's replay
counts its tokens, and accepting it keeps the cached-token figure (issue 8, defect 7)."""

from __future__ import annotations

import anthropic
import instructor
import pytest

from extractor.caching import instructor_cache
from extractor.models import Entry
from extractor.services import replay as service
from tests.caching.support import UserDetail

pytestmark = pytest.mark.django_db

# The fake provider's address is known only once its fixture runs; replay finds the
# function by import, so it lives here and reads the address when called.
ANTHROPIC_BASE_URL: list[str] = []


@instructor_cache
def extract_with_claude(text: str) -> UserDetail:
    claude = instructor.from_anthropic(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=ANTHROPIC_BASE_URL[-1], max_retries=0)
    )
    return claude.chat.completions.create(
        model="claude-3-5-haiku-latest",
        max_tokens=1000,
        response_model=UserDetail,
        messages=[{"role": "user", "content": text}],
    )


@pytest.fixture
def claude_entry(fake_llm, flush_records) -> Entry:
    ANTHROPIC_BASE_URL[:] = [fake_llm.anthropic_base_url]
    fake_llm.answer_with({"name": "Jason", "age": 25})
    extract_with_claude("Jason is 25 years old")
    flush_records()
    fake_llm.reset()
    return Entry.objects.get()


def test_an_anthropic_replay_records_its_tokens_and_accepting_keeps_the_cached_ones(
    fake_llm, claude_entry, flush_records
):
    fake_llm.answer_with({"name": "Jason", "age": 26})
    fake_llm.report_usage(
        prompt_tokens=2500, completion_tokens=40, cached_tokens=2048, cache_write_tokens=100
    )

    replay = service.entry_replay(entry=claude_entry, by=None)

    assert (replay.prompt_tokens, replay.completion_tokens) == (2500, 40)
    replacement = service.replay_accept(replay=replay, by=None)
    replacement.refresh_from_db()
    assert (
        replacement.prompt_tokens,
        replacement.completion_tokens,
        replacement.cached_prompt_tokens,
    ) == (2500, 40, 2048)
    assert replacement.output == {"name": "Jason", "age": 26}
