"""Async functions: the same cache through AsyncOpenAI, redis.asyncio and single-flight."""

from __future__ import annotations

import asyncio

import instructor
import pytest

from extractor.caching import (
    ArgumentEncodingError,
    CacheBackend,
    RedisBackend,
    capture_calls,
    instructor_cache,
)
from tests.caching.support import UserDetail, outcomes


def cached_extraction(aclient: instructor.AsyncInstructor, backend: CacheBackend):
    @instructor_cache(backend=backend)
    async def extract(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def test_an_async_call_misses_then_hits(aclient, backend, fake_llm):
    extract = cached_extraction(aclient, backend)

    async def twice() -> tuple[UserDetail, UserDetail]:
        return await extract("Jason is 25"), await extract("Jason is 25")

    with capture_calls() as calls:
        first, second = asyncio.run(twice())

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert isinstance(second, UserDetail)
    assert second.model_dump() == first.model_dump() == {"name": "name of Jason is 25", "age": 12}
    assert backend.get(extract.cache.cache_key("Jason is 25")) is not None


def test_an_async_hit_is_served_from_a_later_event_loop(aclient, backend, fake_llm):
    extract = cached_extraction(aclient, backend)

    asyncio.run(extract("Jason is 25"))
    again = asyncio.run(extract("Jason is 25"))

    assert fake_llm.count == 1
    assert again.name == "name of Jason is 25"


def test_async_and_sync_callers_share_redis_entries(aclient, client, redis_backend, fake_llm):
    extract_async = cached_extraction(aclient, redis_backend)

    @instructor_cache(backend=redis_backend)
    def extract_sync(text: str) -> UserDetail:
        raise AssertionError("the async caller stored this already")

    # Same definition site is not needed: the same key is. Store through redis.asyncio...
    key = extract_async.cache.cache_key("Jason is 25")
    asyncio.run(extract_async("Jason is 25"))
    stored = redis_backend.get(key)
    # ...and read it back through redis.asyncio after a synchronous write.
    redis_backend.client.delete(redis_backend.prefix + key)
    redis_backend.set(key, stored.decode())
    again = asyncio.run(extract_async("Jason is 25"))

    assert fake_llm.count == 1
    assert again.name == "name of Jason is 25"
    assert extract_sync.cache.backend() is redis_backend


def test_concurrent_identical_async_calls_make_one_provider_request(aclient, backend, fake_llm):
    extract = cached_extraction(aclient, backend)
    fake_llm.stall(0.3)

    async def together() -> list[UserDetail]:
        return await asyncio.gather(*[extract("Jason is 25") for _ in range(10)])

    with capture_calls() as calls:
        results = asyncio.run(together())

    assert fake_llm.count == 1
    assert {tuple(result.model_dump().items()) for result in results} == {
        (("name", "name of Jason is 25"), ("age", 12))
    }
    assert sorted(outcomes(calls)) == ["hit"] * 9 + ["miss"]


def test_concurrent_async_calls_with_different_inputs_each_call_the_provider(
    aclient, disk_backend, fake_llm
):
    extract = cached_extraction(aclient, disk_backend)
    texts = ["Jason is 25", "Sarah is 31", "Ada is 36"] * 3

    async def together() -> list[UserDetail]:
        return await asyncio.gather(*[extract(text) for text in texts])

    results = asyncio.run(together())

    assert fake_llm.count == 3
    assert [result.name for result in results] == [f"name of {text}" for text in texts]


def test_a_failed_async_computation_reaches_every_waiter_and_caches_nothing(
    aclient, disk_backend, fake_llm
):
    extract = cached_extraction(aclient, disk_backend)
    fake_llm.stall(0.3)
    fake_llm.fail_next(500)

    async def together() -> list[object]:
        return await asyncio.gather(
            *[extract("Jason is 25") for _ in range(5)], return_exceptions=True
        )

    results = asyncio.run(together())

    assert fake_llm.count == 1
    assert all(isinstance(result, Exception) for result in results)
    assert len({type(result) for result in results}) == 1
    assert "500" in str(results[0])
    assert disk_backend.get(extract.cache.cache_key("Jason is 25")) is None

    fake_llm.stall(0)
    assert asyncio.run(extract("Jason is 25")).name == "name of Jason is 25"
    assert fake_llm.count == 2


def test_an_async_argument_with_no_json_form_is_refused_before_the_provider(
    aclient, memory_backend, fake_llm
):
    extract = cached_extraction(aclient, memory_backend)

    with pytest.raises(ArgumentEncodingError, match="'text'"):
        asyncio.run(extract(object()))
    assert fake_llm.count == 0


def test_an_async_call_with_redis_down_returns_the_providers_answer(aclient, fake_llm):
    from tests.redis_server import free_port

    dead = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    extract = cached_extraction(aclient, dead)

    with capture_calls() as calls:
        user = asyncio.run(extract("Jason is 25"))

    assert user.name == "name of Jason is 25"
    assert fake_llm.count == 1
    (miss,) = calls
    assert (miss.outcome, miss.miss_reason, miss.stored) == ("miss", "backend_error", False)
    assert "onnect" in miss.error


def test_a_waiter_whose_computing_caller_is_cancelled_computes_the_value_itself(
    aclient, memory_backend, fake_llm
):
    extract = cached_extraction(aclient, memory_backend)
    fake_llm.stall(0.4)

    async def cancel_the_first_caller() -> tuple[asyncio.Task, UserDetail]:
        first = asyncio.create_task(extract("Jason is 25"))
        await asyncio.sleep(0.1)  # first is waiting on the provider
        waiter = asyncio.create_task(extract("Jason is 25"))
        await asyncio.sleep(0.1)  # waiter is waiting on first
        first.cancel()
        return first, await waiter

    first, user = asyncio.run(cancel_the_first_caller())

    assert first.cancelled()
    assert user.name == "name of Jason is 25"
    assert memory_backend.get(extract.cache.cache_key("Jason is 25")) is not None


def test_a_cancelled_waiter_leaves_the_computing_caller_alone(aclient, memory_backend, fake_llm):
    extract = cached_extraction(aclient, memory_backend)
    fake_llm.stall(0.4)

    async def cancel_the_waiter() -> tuple[asyncio.Task, UserDetail]:
        first = asyncio.create_task(extract("Jason is 25"))
        await asyncio.sleep(0.1)
        waiter = asyncio.create_task(extract("Jason is 25"))
        await asyncio.sleep(0.1)
        waiter.cancel()
        return waiter, await first

    waiter, user = asyncio.run(cancel_the_waiter())

    assert waiter.cancelled()
    assert user.name == "name of Jason is 25"
    assert fake_llm.count == 1
