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


def test_replaying_a_built_in_anthropic_extraction_with_a_document_keeps_its_usage(
    fake_llm, settings, flush_records
):
    """Re-invoked through extract_UserDetail with the entry's arguments (the document by
    its hash): the fresh call reads the provider's prompt cache the first call wrote."""
    from extractor import extraction
    from extractor.models import Call
    from extractor.services.documents import document_store
    from tests.fake_llm import estimate_tokens

    fake_llm.serve_anthropic(settings)
    text = " ".join(f"Clause {n}: the tenant is Jason, aged 25." for n in range(500))
    document = document_store("lease.txt", text)
    extraction.extract("Who is the tenant?", "UserDetail", "anthropic/claude-haiku-4-5", document)
    flush_records()
    entry = Entry.objects.get()
    tokens = estimate_tokens(text)
    assert (entry.cache_write_tokens, entry.document_sha) == (tokens, document.sha256)

    replay = service.entry_replay(entry=entry, by=None)

    assert fake_llm.requests[-1]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert (replay.prompt_tokens, replay.cached_prompt_tokens, replay.cache_write_tokens) == (
        120 + tokens,
        tokens,
        0,
    )
    row = Call.objects.get(outcome="replay")
    assert (row.llm_provider, row.cached_prompt_tokens, row.document_sha) == (
        "anthropic",
        tokens,
        document.sha256,
    )
    replacement = service.replay_accept(replay=replay, by=None)
    replacement.refresh_from_db()
    assert (replacement.cached_prompt_tokens, replacement.cache_write_tokens) == (tokens, 0)


def test_a_replay_keeps_the_cache_writes_it_made(fake_llm, claude_entry):
    fake_llm.report_usage(
        prompt_tokens=2500,
        completion_tokens=40,
        cache_write_tokens=2000,
        cache_write_1h_tokens=2000,
    )

    replay = service.entry_replay(entry=claude_entry, by=None)

    assert (replay.cache_write_tokens, replay.cache_write_1h_tokens) == (2000, 2000)
    replacement = service.replay_accept(replay=replay, by=None)
    replacement.refresh_from_db()
    assert (replacement.cache_write_tokens, replacement.cache_write_1h_tokens) == (2000, 2000)
