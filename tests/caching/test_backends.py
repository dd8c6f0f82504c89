"""Backends chosen by URL, and the contract each of them keeps."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from extractor.caching import (
    CacheConfigurationError,
    DiskBackend,
    MemoryBackend,
    RedisBackend,
    backend_from_url,
    capture_calls,
    instructor_cache,
)
from tests.caching.support import UserDetail, outcomes


def text_of(raw: str | bytes | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


# -- the contract ----------------------------------------------------------------------


def test_a_missing_key_reads_as_none(backend):
    assert backend.get("0" * 64) is None


def test_a_value_reads_back_as_written(backend):
    backend.set("k1", '{"output": "é ✓"}')

    assert text_of(backend.get("k1")) == '{"output": "é ✓"}'


def test_a_later_write_replaces_the_value(backend):
    backend.set("k1", "first")
    backend.set("k1", "second")

    assert text_of(backend.get("k1")) == "second"


def test_delete_many_removes_the_keys_and_counts_those_that_existed(backend):
    backend.set("a", "1")
    backend.set("b", "2")
    backend.set("c", "3")

    assert backend.delete_many(["a", "b", "never-stored"]) == 2
    assert backend.get("a") is None
    assert backend.get("b") is None
    assert text_of(backend.get("c")) == "3"
    assert backend.delete("c") is True
    assert backend.delete("c") is False


def test_delete_many_takes_more_keys_than_one_batch(backend):
    keys = [f"key-{number}" for number in range(2500)]
    for key in keys:
        backend.set(key, "v")

    assert backend.delete_many(iter(keys)) == 2500
    assert backend.get(keys[0]) is None
    assert backend.get(keys[-1]) is None


def test_clear_empties_the_backend(backend):
    backend.set("a", "1")
    backend.set("b", "2")

    backend.clear()

    assert backend.get("a") is None
    assert backend.get("b") is None


def test_async_reads_and_writes_share_the_values_of_sync_ones(backend):
    async def roundtrip() -> tuple[object, object]:
        await backend.aset("written-async", "A")
        return await backend.aget("written-sync"), await backend.aget("never-stored")

    backend.set("written-sync", "S")
    from_sync, missing = asyncio.run(roundtrip())

    assert text_of(from_sync) == "S"
    assert missing is None
    assert text_of(backend.get("written-async")) == "A"


# -- memory:// ---------------------------------------------------------------------------


def test_memory_url_with_maxsize_evicts_the_least_recently_used():
    backend = backend_from_url("memory://?maxsize=2")
    assert isinstance(backend, MemoryBackend)

    backend.set("a", "1")
    backend.set("b", "2")
    backend.get("a")
    backend.set("c", "3")

    assert backend.get("b") is None
    assert backend.get("a") == "1"
    assert backend.get("c") == "3"
    assert backend.label == "memory://?maxsize=2"


def test_an_evicted_value_is_computed_again(client, fake_llm):
    @instructor_cache(backend=backend_from_url("memory://?maxsize=2"))
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with capture_calls() as calls:
        for text in ["Jason is 25", "Sarah is 31", "Jason is 25", "Ada is 36", "Sarah is 31"]:
            extract(text)

    assert outcomes(calls) == ["miss", "miss", "hit", "miss", "miss"]
    assert fake_llm.count == 4


def test_an_empty_memory_backend_is_still_the_one_used(client, fake_llm):
    memory = MemoryBackend()

    @instructor_cache(backend=memory)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    extract("Jason is 25")

    assert extract.cache.backend() is memory
    assert extract.cache.info.backend_label == "memory://?maxsize=10000"
    assert memory.get(extract.cache.cache_key("Jason is 25")) is not None


@pytest.mark.parametrize("url", ["memory://?maxsize=0", "memory://?maxsize=many"])
def test_a_memory_url_needs_a_positive_maxsize(url):
    with pytest.raises(CacheConfigurationError, match="maxsize"):
        backend_from_url(url)


# -- disk:// -----------------------------------------------------------------------------


def test_a_disk_url_names_the_directory(tmp_path):
    backend = backend_from_url(f"disk://{tmp_path / 'cache'}")

    assert isinstance(backend, DiskBackend)
    assert backend.directory == tmp_path / "cache"
    assert backend.label == f"disk://{tmp_path / 'cache'}"
    assert (tmp_path / "cache").is_dir()
    backend.close()


def test_two_disk_backends_on_one_directory_share_values(tmp_path):
    writer = backend_from_url(f"disk://{tmp_path / 'cache'}")
    reader = backend_from_url(f"disk://{tmp_path / 'cache'}")

    writer.set("k1", "shared")

    assert reader.get("k1") == "shared"
    writer.close()
    reader.close()


def test_a_large_value_stored_in_a_file_reads_back(disk_backend):
    value = '{"output": "' + "x" * 100_000 + '"}'

    disk_backend.set("big", value)

    assert disk_backend.get("big") == value


def test_a_large_cached_output_is_served_from_the_disk(client, disk_backend, fake_llm):
    fake_llm.answer_with({"name": "Jason " * 20_000, "age": 25})

    @instructor_cache(backend=disk_backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    first = extract("Jason is 25")
    second = extract("Jason is 25")

    assert fake_llm.count == 1
    assert second.model_dump() == first.model_dump()
    assert len(second.name) == 120_000


@pytest.mark.parametrize("url", ["disk://", "disk:///tmp/x?size_limit=lots"])
def test_a_bad_disk_url_is_refused(url):
    with pytest.raises(CacheConfigurationError):
        backend_from_url(url)


# -- redis:// ----------------------------------------------------------------------------


def test_a_redis_url_prefix_is_carried_by_every_key(redis_cache_url, redis_url):
    backend = backend_from_url(redis_cache_url)
    assert isinstance(backend, RedisBackend)
    prefix = redis_cache_url.split("prefix=", 1)[1]
    raw = redis.Redis.from_url(redis_url)
    try:
        backend.set("k1", "value")

        assert backend.prefix == prefix
        assert raw.get(prefix + "k1") == b"value"
        assert raw.get("k1") is None
    finally:
        backend.clear()
        backend.close()
        raw.close()


def test_a_redis_url_without_a_prefix_gets_the_default_one():
    backend = backend_from_url("redis://127.0.0.1:6379/0")

    assert isinstance(backend, RedisBackend)
    assert backend.prefix == "cachesite:"


def test_clear_on_redis_removes_only_keys_with_its_prefix(redis_url):
    run = uuid.uuid4().hex[:8]
    mine = backend_from_url(f"{redis_url}?prefix=mine-{run}:")
    theirs = backend_from_url(f"{redis_url}?prefix=theirs-{run}:")
    raw = redis.Redis.from_url(redis_url)
    try:
        for number in range(1200):
            mine.set(f"k{number}", "mine")
        theirs.set("k1", "theirs")
        raw.set(f"unrelated-{run}", "kept")

        mine.clear()

        assert raw.keys(f"mine-{run}:*") == []
        assert theirs.get("k1") == b"theirs"
        assert raw.get(f"unrelated-{run}") == b"kept"
    finally:
        theirs.clear()
        raw.delete(f"unrelated-{run}")
        for backend in (mine, theirs):
            backend.close()
        raw.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://cache:hunter2@127.0.0.1:6379/0", "redis://cache:***@127.0.0.1:6379/0"),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "rediss://:hunter2@redis.example:6380/1?prefix=app:",
            "rediss://:***@redis.example:6380/1",
        ),
    ],
)
def test_a_redis_password_is_masked_in_the_label(url, shown):
    backend = backend_from_url(url)

    assert backend.label.startswith(shown)
    assert "hunter2" not in backend.label
    assert "hunter2" not in repr(backend)


def test_a_decorated_function_reports_the_masked_label(client):
    @instructor_cache(backend="redis://:hunter2@127.0.0.1:6399/0")
    def extract(text: str) -> UserDetail:
        raise AssertionError("not called")

    assert "hunter2" not in extract.cache.info.backend_label
    assert ":***@127.0.0.1:6399/0" in extract.cache.info.backend_label


def test_a_unix_socket_url_is_a_redis_backend():
    backend = backend_from_url("unix:///run/redis/redis.sock?prefix=app:")

    assert isinstance(backend, RedisBackend)
    assert backend.prefix == "app:"


# -- unknown URLs ------------------------------------------------------------------------


def test_an_unknown_scheme_lists_the_known_ones_without_the_password():
    with pytest.raises(CacheConfigurationError) as raised:
        backend_from_url("memcached://admin:hunter2@cache.local:11211")

    message = str(raised.value)
    for scheme in ("memory://", "disk://", "redis://"):
        assert scheme in message
    assert "hunter2" not in message
    assert "***" in message


def test_an_unknown_backend_url_fails_when_decorating():
    with pytest.raises(CacheConfigurationError, match="Unknown cache URL"):

        @instructor_cache(backend="mongodb://localhost/cache")
        def extract(text: str) -> UserDetail:
            raise AssertionError("not called")


def test_functions_naming_the_same_url_share_one_backend(tmp_path):
    url = f"disk://{tmp_path / 'shared'}"

    @instructor_cache(backend=url)
    def first(text: str) -> UserDetail:
        raise AssertionError("not called")

    @instructor_cache(backend=url)
    def second(text: str) -> UserDetail:
        raise AssertionError("not called")

    assert first.cache.backend() is second.cache.backend()


def test_clear_on_redis_treats_glob_characters_in_its_prefix_literally(redis_url):
    run = uuid.uuid4().hex[:8]
    mine = backend_from_url(f"{redis_url}?prefix=app*{run}:")
    raw = redis.Redis.from_url(redis_url)
    try:
        mine.set("k1", "mine")
        raw.set(f"app-other{run}:k1", "theirs")

        mine.clear()

        assert mine.get("k1") is None
        assert raw.get(f"app-other{run}:k1") == b"theirs"
    finally:
        raw.delete(f"app-other{run}:k1", f"app*{run}:k1")
        mine.close()
        raw.close()
