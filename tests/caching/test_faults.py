"""Trouble in the cache never reaches the caller: corrupt values and a dead Redis fall
through to the provider; only the provider's own errors are raised."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis

from extractor.caching import RedisBackend, capture_calls, configure, instructor_cache
from extractor.caching.errors import CorruptValue
from tests import redis_server
from tests.caching.support import UserDetail, cached_extraction, computed, outcomes
from tests.redis_server import RedisProcess, free_port


def text_of(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def garbage(good: str) -> str:
    return "\x00not json{" + good[:20]


def fields_of_the_wrong_type(good: str) -> str:
    envelope = json.loads(good)
    envelope["output"] = {"name": 25, "age": "Jason"}
    return json.dumps(envelope)


def another_schema_fingerprint(good: str) -> str:
    envelope = json.loads(good)
    envelope["schema_fingerprint"] = "0" * 64
    return json.dumps(envelope)


@pytest.mark.parametrize("spoil", [garbage, fields_of_the_wrong_type, another_schema_fingerprint])
def test_a_corrupt_value_is_recomputed_and_overwritten(client, backend, fake_llm, spoil):
    extract = cached_extraction(client, backend)
    key = extract.cache.cache_key("Jason is 25")
    extract("Jason is 25")
    extract.cache.backend().set(key, spoil(text_of(backend.get(key))))

    with capture_calls() as calls:
        user = extract("Jason is 25")
        again = extract("Jason is 25")

    assert user.model_dump() == again.model_dump() == {"name": "name of Jason is 25", "age": 12}
    assert fake_llm.count == 2
    assert outcomes(calls) == ["miss", "hit"]
    miss = calls[0]
    assert (miss.miss_reason, miss.stored) == ("corrupt", True)
    assert miss.error
    stored = json.loads(text_of(backend.get(key)))
    assert stored["schema_fingerprint"] == extract.cache.info.schema_fingerprint
    assert stored["output"] == {"name": "name of Jason is 25", "age": 12}


def test_a_corrupt_value_is_recomputed_by_an_async_caller(aclient, redis_backend, fake_llm):
    @instructor_cache(backend=redis_backend)
    async def extract(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    redis_backend.set(extract.cache.cache_key("Jason is 25"), "{not json")

    with capture_calls() as calls:
        user = asyncio.run(extract("Jason is 25"))
        asyncio.run(extract("Jason is 25"))

    assert user.name == "name of Jason is 25"
    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert calls[0].miss_reason == "corrupt"


UNPICKLED: list[str] = []


def _run_on_unpickle(payload: str) -> str:
    UNPICKLED.append(payload)
    return payload


class PickleExploit:
    """Runs code when unpickled, as a planted value in a shared cache directory would."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    def __reduce__(self):
        return (_run_on_unpickle, (self.payload,))


@pytest.mark.parametrize("size", [10, 100_000], ids=["inline row", "value file"])
def test_a_pickled_diskcache_value_is_refused_never_unpickled(client, disk_backend, fake_llm, size):
    extract = cached_extraction(client, disk_backend)
    key = extract.cache.cache_key("Jason is 25")
    UNPICKLED.clear()
    disk_backend.cache.set(key, PickleExploit("x" * size))  # diskcache's pickle mode

    with pytest.raises(CorruptValue):
        disk_backend.get(key)
    with capture_calls() as calls:
        user = extract("Jason is 25")
        extract("Jason is 25")

    assert UNPICKLED == []
    assert user.name == "name of Jason is 25"
    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert calls[0].miss_reason == "corrupt"
    assert json.loads(disk_backend.get(key))["output"]["name"] == "name of Jason is 25"


def test_a_dead_redis_is_called_through_and_skipped_during_the_cool_down(
    client, fake_llm, retry_after, monkeypatch
):
    retry_after(60.0)
    dead = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    reads: list[str] = []
    real_get = dead.get

    def counted_get(key: str) -> bytes | None:
        reads.append(key)
        return real_get(key)

    monkeypatch.setattr(dead, "get", counted_get)
    extract = cached_extraction(client, dead)

    with capture_calls() as calls:
        first = extract("Jason is 25")
        second = extract("Jason is 25")

    assert first.name == second.name == "name of Jason is 25"
    assert fake_llm.count == 2
    # Only the first call paid for the refused connection; the second skipped Redis.
    assert len(reads) == 1
    assert [(event.outcome, event.miss_reason, event.stored) for event in calls] == [
        ("miss", "backend_error", False),
        ("miss", "backend_error", False),
    ]
    assert calls[0].error.startswith("ConnectionError")
    assert calls[1].error == calls[0].error


def test_a_new_default_backend_is_used_at_once_not_skipped_for_the_old_ones_cool_down(
    client, fake_llm, retry_after, tmp_path
):
    """The cool-down belongs to the backend that failed: once the default points
    elsewhere (settings changed, a reconfigured worker), the next call uses the new one."""
    retry_after(60.0)
    configure(url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    extract = cached_extraction(client, None)  # on the default backend
    with capture_calls() as calls:
        extract("Jason is 25")
        configure(url=f"disk://{tmp_path / 'new-cache'}")
        extract("Jason is 25")
        extract("Jason is 25")

    assert outcomes(calls) == ["miss", "miss", "hit"]
    assert calls[0].miss_reason == "backend_error"
    assert (calls[1].miss_reason, calls[1].error, calls[1].stored) == (None, None, True)
    assert fake_llm.count == 2


def envelope_json(extract, user: UserDetail) -> str:
    envelope = extract.cache.envelope_type(
        schema_fingerprint=extract.cache.info.schema_fingerprint,
        output=user,
        created_at=time.time(),
    )
    return envelope.model_dump_json()


def test_redis_is_asked_again_once_the_cool_down_is_over(
    client, fake_llm, retry_after, monkeypatch
):
    retry_after(2.0)
    port = free_port()
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", prefix=f"test-{uuid.uuid4().hex[:8]}:")
    extract = cached_extraction(client, backend)

    extract("Jason is 25")  # nothing listens on the port yet
    failed_by = time.perf_counter()
    # Now a Redis comes up on that port, already holding a value for the call.
    monkeypatch.setattr(redis_server, "free_port", lambda: port)
    server = RedisProcess()
    try:
        stored = UserDetail(name="Served by Redis", age=40)
        backend.set(extract.cache.cache_key("Jason is 25"), envelope_json(extract, stored))

        with capture_calls() as during:
            skipped = extract("Jason is 25")
        time.sleep(max(0.0, failed_by + 2.0 + 0.1 - time.perf_counter()))
        with capture_calls() as after:
            served = extract("Jason is 25")
    finally:
        server.stop()

    assert skipped.name == "name of Jason is 25"
    assert during[0].miss_reason == "backend_error"
    assert served.model_dump() == stored.model_dump()
    assert outcomes(after) == ["hit"]
    assert fake_llm.count == 2


def test_redis_stopping_after_values_were_cached_is_called_through(client, fake_llm):
    server = RedisProcess()
    try:
        backend = RedisBackend(server.url)
        extract = cached_extraction(client, backend)
        extract("Jason is 25")
        extract("Jason is 25")
        assert fake_llm.count == 1
    finally:
        server.stop()

    with capture_calls() as calls:
        user = extract("Jason is 25")

    assert user.name == "name of Jason is 25"
    assert fake_llm.count == 2
    assert (calls[0].outcome, calls[0].miss_reason) == ("miss", "backend_error")
    assert "Error" in calls[0].error


def test_a_failed_write_to_redis_still_returns_the_value(client, fake_llm):
    server = RedisProcess()
    try:
        # Reads work, writes are refused: Redis is out of memory.
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        extract = cached_extraction(client, RedisBackend(server.url))

        with capture_calls() as calls:
            user = extract("Jason is 25")
        admin.close()
    finally:
        server.stop()

    assert user.name == "name of Jason is 25"
    (miss,) = computed(calls)
    # The read worked, so why it missed is left to the recorder (new input);
    # the failed write is the call's error.
    assert (miss.outcome, miss.stored, miss.miss_reason) == ("miss", False, None)
    assert "maxmemory" in miss.error


def test_a_provider_error_reaches_the_caller_and_nothing_is_cached(client, disk_backend, fake_llm):
    extract = cached_extraction(client, disk_backend)
    fake_llm.fail_next(500)

    with capture_calls() as calls, pytest.raises(Exception, match="500"):
        extract("Jason is 25")

    assert [(event.outcome, event.stored) for event in calls] == [("error", False)]
    assert "500" in calls[0].error
    assert disk_backend.get(extract.cache.cache_key("Jason is 25")) is None

    extract("Jason is 25")
    extract("Jason is 25")
    assert fake_llm.count == 2


def test_a_full_redis_keeps_serving_hits_and_records_each_refused_write(client, fake_llm):
    warm = [f"User {n} is {20 + n} years old" for n in range(10)]
    server = RedisProcess()
    try:
        admin = redis.Redis.from_url(server.url)
        extract = cached_extraction(client, RedisBackend(server.url))
        for text in warm:
            extract(text)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)

        with capture_calls() as calls:
            for n, text in enumerate(warm):
                extract(f"New user {n} is {30 + n} years old")  # its write is refused
                extract(text)
        admin.close()
    finally:
        server.stop()

    # Used read-only: each warm key still hits right after a refused write.
    assert outcomes(calls) == ["miss", "hit"] * 10
    assert fake_llm.count == 10 + 10
    refused = computed(calls)
    assert {(event.stored, event.miss_reason) for event in refused} == {(False, None)}
    assert all("maxmemory" in event.error for event in refused)


def test_a_dead_redis_is_skipped_by_every_function_that_uses_it(
    client, fake_llm, retry_after, monkeypatch
):
    retry_after(30.0)
    server = RedisProcess()
    backend = RedisBackend(server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    extract = cached_extraction(client, backend)

    @instructor_cache(backend=backend)
    def extract_other(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    server.stop()
    extract("Jason is 25")  # the connection is refused: Redis is down for everyone
    # Redis comes back on the same port holding a value for the other function,
    # which must not look before the cool-down is over.
    monkeypatch.setattr(redis_server, "free_port", lambda: server.port)
    revived = RedisProcess()
    try:
        stored = UserDetail(name="Served by Redis", age=36)
        key = extract_other.cache.cache_key("Ada is 36")
        backend.set(key, envelope_json(extract_other, stored))
        with capture_calls() as calls:
            other = extract_other("Ada is 36")
    finally:
        revived.stop()

    assert other.name == "name of Ada is 36"
    assert (calls[0].miss_reason, calls[0].stored) == ("backend_error", False)
    assert calls[0].error.startswith("ConnectionError")
    assert fake_llm.count == 2
