"""Provider prompt-cache writes and the context document reach every row apart:
calls, entries and the counters (written, dropped to counts only, or rebuilt)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import instructor
import pytest

from extractor.caching import call_labels, capture_calls, instructor_cache
from extractor.models import Call, CallRollup, Entry
from extractor.recording import DatabaseRecorder
from extractor.recording.inserts import COPY_FROM_ROWS
from extractor.recording.rollups import rebuild_from_calls
from extractor.recording.tally import Tally
from extractor.recording.writer import write_tally
from tests.recording.helpers import as_function, person_model

pytestmark = pytest.mark.django_db

BOOK = "It is a truth universally acknowledged... " * 200
BOOK_TOKENS = len(BOOK) // 4  # the fake provider's count
SHA = "d" * 64


@pytest.fixture
def ask_the_book(fake_llm) -> Callable[[str], Any]:
    """A decorated Anthropic extraction sending BOOK, cached for an hour, before the question."""
    claude = instructor.from_anthropic(
        anthropic.Anthropic(
            api_key="sk-ant-test", base_url=fake_llm.anthropic_base_url, max_retries=0
        )
    )
    response_model = person_model()

    def ask(question: str) -> Any:
        return claude.chat.completions.create(
            model="claude-haiku-4-5",
            max_tokens=1000,
            response_model=response_model,
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

    return instructor_cache(as_function(ask, response_model, "ask_the_book"))


def tokens(row: Any) -> tuple[int, int, int]:
    return (row.cached_prompt_tokens, row.cache_write_tokens, row.cache_write_1h_tokens)


def test_a_write_then_a_read_are_recorded_apart_with_their_document(ask_the_book, use_recorder):
    recorder = use_recorder(DatabaseRecorder(background=False))

    with call_labels(document=SHA):
        ask_the_book("Who is the heroine?")
        ask_the_book("Who is her father?")
        ask_the_book("Who is the heroine?")  # a hit: nothing sent
    recorder.flush()

    first, second = Call.objects.filter(outcome="miss").order_by("created_at", "id")
    assert tokens(first) == (0, BOOK_TOKENS, BOOK_TOKENS)
    assert tokens(second) == (BOOK_TOKENS, 0, 0)
    # Inclusive: the prompt holds the 120 fresh tokens and the book, once.
    assert first.prompt_tokens == second.prompt_tokens == 120 + BOOK_TOKENS
    assert {first.document_sha, second.document_sha} == {SHA}
    entry = Entry.objects.get(pk=first.entry_id)
    assert (tokens(entry), entry.document_sha) == ((0, BOOK_TOKENS, BOOK_TOKENS), SHA)
    hit = Call.objects.get(outcome="hit")
    assert (tokens(hit), hit.document_sha) == ((0, 0, 0), "")

    misses = CallRollup.objects.get(span="hour", outcome="miss")
    assert tokens(misses) == (BOOK_TOKENS, BOOK_TOKENS, BOOK_TOKENS)
    # A hit saved its entry's whole call, the write it paid included.
    hits = CallRollup.objects.get(span="hour", outcome="hit")
    assert tokens(hits) == (0, BOOK_TOKENS, BOOK_TOKENS)
    assert tokens(CallRollup.objects.get(span="day", outcome="miss")) == tokens(misses)


def test_a_recount_of_the_call_log_keeps_the_writes(ask_the_book, use_recorder):
    recorder = use_recorder(DatabaseRecorder(background=False))
    ask_the_book("Who is the heroine?")
    ask_the_book("Who is the heroine?")
    recorder.flush()
    written = {(r.outcome, r.span): tokens(r) for r in CallRollup.objects.all()}

    rebuild_from_calls()

    assert {(r.outcome, r.span): tokens(r) for r in CallRollup.objects.all()} == written
    assert written[("hit", "hour")] == (0, BOOK_TOKENS, BOOK_TOKENS)


def test_a_call_whose_row_is_dropped_still_counts_its_writes(ask_the_book):
    with capture_calls() as calls:
        ask_the_book("Who is the heroine?")
    tally = Tally(max_rows=0)  # no room for any row: counted only
    tally.fold(calls)

    write_tally(tally)

    assert not Call.objects.exists()
    assert tokens(CallRollup.objects.get(span="hour", outcome="miss")) == (
        0,
        BOOK_TOKENS,
        BOOK_TOKENS,
    )


def test_a_batch_large_enough_for_copy_keeps_the_writes_and_the_document(
    ask_the_book, use_recorder
):
    # From COPY_FROM_ROWS rows on, PostgreSQL takes the batch through COPY.
    recorder = use_recorder(DatabaseRecorder(background=False))
    with call_labels(document=SHA):
        for _ in range(COPY_FROM_ROWS + 10):
            ask_the_book("Who is the heroine?")
    recorder.flush()

    miss = Call.objects.get(outcome="miss")
    assert (tokens(miss), miss.document_sha) == ((0, BOOK_TOKENS, BOOK_TOKENS), SHA)
    assert Call.objects.filter(outcome="hit", document_sha="").count() == COPY_FROM_ROWS + 9
