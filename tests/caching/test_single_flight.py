"""Threads missing on the same key at once: one computes, the others wait for its value."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import instructor

from extractor.caching import CacheBackend, capture_calls, instructor_cache
from tests.caching.support import UserDetail, outcomes


def cached_extraction(client: instructor.Instructor, backend: CacheBackend):
    @instructor_cache(backend=backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def call_together(function, texts: list[str]) -> list[object]:
    """Calls function(text) for each text in its own thread, all released at once.

    Each thread returns (result or exception, its captured records).
    """
    start = threading.Barrier(len(texts))

    def one(text: str) -> tuple[object, list[object]]:
        start.wait()
        with capture_calls() as calls:
            try:
                result: object = function(text)
            except Exception as exc:
                result = exc
        return result, calls

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return list(pool.map(one, texts))


def test_eight_threads_missing_on_one_key_make_one_provider_request(client, backend, fake_llm):
    extract = cached_extraction(client, backend)
    fake_llm.stall(0.3)

    done = call_together(extract, ["Jason is 25"] * 8)

    assert fake_llm.count == 1
    assert [result.model_dump() for result, _ in done] == [
        {"name": "name of Jason is 25", "age": 12}
    ] * 8
    recorded = [outcome for _, calls in done for outcome in outcomes(calls)]
    assert sorted(recorded) == ["hit"] * 7 + ["miss"]


def test_threads_on_different_keys_each_compute_their_own(client, disk_backend, fake_llm):
    extract = cached_extraction(client, disk_backend)
    texts = ["Jason is 25", "Sarah is 31", "Ada is 36", "Alan is 41"] * 2

    done = call_together(extract, texts)

    assert fake_llm.count == 4
    assert [result.name for result, _ in done] == [f"name of {text}" for text in texts]


def test_a_failed_computation_reaches_every_waiting_thread_and_caches_nothing(
    client, disk_backend, fake_llm
):
    extract = cached_extraction(client, disk_backend)
    fake_llm.stall(0.3)
    fake_llm.fail_next(500)

    done = call_together(extract, ["Jason is 25"] * 4)

    assert fake_llm.count == 1
    errors = [result for result, _ in done]
    assert all(isinstance(error, Exception) and "500" in str(error) for error in errors)
    assert disk_backend.get(extract.cache.cache_key("Jason is 25")) is None

    fake_llm.stall(0)
    assert extract("Jason is 25").name == "name of Jason is 25"
    assert fake_llm.count == 2
