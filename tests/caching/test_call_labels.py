"""call_labels(): what the cache key does not say but the dashboard groups by."""

from __future__ import annotations

import asyncio

import pytest

from extractor.caching import call_labels, capture_calls, instructor_cache
from extractor.caching.events import CallEvent
from extractor.models import Call, Entry
from tests.caching.support import UserDetail, cached_extraction, computed


def test_calls_carry_the_labels_of_their_block_and_inner_labels_win(client, memory_backend):
    extract = cached_extraction(client, memory_backend)

    with capture_calls() as calls:
        with call_labels(document="a" * 64, tenant="acme"):
            extract("Jason is 25")
            with call_labels(document="b" * 64):
                extract("Ann is 30")
            extract("Bob is 40")
        extract("Eve is 50")

    assert [event.labels for event in computed(calls)] == [
        {"document": "a" * 64, "tenant": "acme"},
        {"document": "b" * 64, "tenant": "acme"},
        {"document": "a" * 64, "tenant": "acme"},
        {},
    ]


def test_a_hit_is_recorded_without_labels(client, memory_backend):
    extract = cached_extraction(client, memory_backend)
    extract("Jason is 25")

    with capture_calls() as calls, call_labels(document="a" * 64):
        extract("Jason is 25")

    assert len(calls) == 1
    assert isinstance(calls[0], tuple)


def test_concurrent_async_calls_keep_their_own_labels(aclient, memory_backend):
    @instructor_cache(backend=memory_backend)
    async def extract(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    async def labelled(text: str, document: str) -> None:
        with call_labels(document=document):
            await asyncio.sleep(0)  # let the other task enter its block first
            await extract(text)

    async def both() -> None:
        await asyncio.gather(labelled("Jason is 25", "a" * 64), labelled("Ann is 30", "b" * 64))

    with capture_calls() as calls:
        asyncio.run(both())

    by_text = {
        event.info.arguments_of(event.arguments_json)["text"]: event.labels["document"]
        for event in computed(calls)
    }
    assert by_text == {"Jason is 25": "a" * 64, "Ann is 30": "b" * 64}


def test_a_label_must_be_text():
    with pytest.raises(TypeError, match="document must be a str"), call_labels(document=3):  # type: ignore[arg-type]
        pass


@pytest.mark.django_db
def test_the_document_label_is_stored_on_the_call_and_its_entry(client, flush_records):
    extract = cached_extraction(client, None)  # type: ignore[arg-type]  # the default backend

    with call_labels(document="d" * 64):
        extract("Jason is 25")
        extract("Jason is 25")  # a hit: it sent nothing with the document
        extract.cache.replay("Jason is 25")
    flush_records()

    rows = list(Call.objects.order_by("created_at", "id").values_list("outcome", "document_sha"))
    assert rows == [("miss", "d" * 64), ("hit", ""), ("replay", "d" * 64)]
    assert Entry.objects.get().document_sha == "d" * 64


def test_events_outside_any_block_have_no_labels(client, memory_backend):
    extract = cached_extraction(client, memory_backend)
    with capture_calls() as calls:
        extract("Jason is 25")
    (event,) = calls
    assert isinstance(event, CallEvent)
    assert event.labels == {}
