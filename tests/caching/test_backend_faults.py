"""A fault stays with the key that has it: a Redis key of the wrong type, a refused
write, a cache directory that cannot be opened or is deleted under the process; and
the async Redis client leaves no connections behind when its event loop ends."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import redis

from extractor.caching import DiskBackend, capture_calls, instructor_cache
from tests.caching.support import UserDetail, cached_extraction, computed, outcomes

HOT_KEYS = [f"User number {n} is {20 + n} years old" for n in range(20)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("redis_type", ["list", "hash"])
def test_one_redis_key_of_the_wrong_type_costs_one_llm_call_among_twenty_hot_keys(
    client, redis_backend, redis_url, fake_llm, redis_type
):
    extract = cached_extraction(client, redis_backend)
    for text in HOT_KEYS:
        extract(text)
    admin = redis.Redis.from_url(redis_url)
    spoiled = redis_backend.prefix + extract.cache.cache_key(HOT_KEYS[7])
    admin.delete(spoiled)
    if redis_type == "list":
        admin.rpush(spoiled, "not", "a", "value")
    else:
        admin.hset(spoiled, mapping={"not": "a value"})

    with capture_calls() as calls:
        for _round in range(5):
            for text in HOT_KEYS:
                extract(text)

    # Only the spoiled key was recomputed, once: its neighbours kept hitting.
    assert fake_llm.count == 20 + 1
    (repaired,) = computed(calls)
    assert (repaired.miss_reason, repaired.stored) == ("corrupt", True)
    assert "WRONGTYPE" in repaired.error
    assert admin.type(spoiled) == b"string"  # the store replaced the list or hash
    admin.close()


def test_an_async_read_of_a_wrong_type_key_is_a_corrupt_miss_and_repaired(
    aclient, redis_backend, redis_url, fake_llm
):
    @instructor_cache(backend=redis_backend)
    async def extract(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    async def twice_then_a_neighbour() -> None:
        await extract("Jason is 25")
        await extract("Jason is 25")
        await extract("Ada is 36")
        await extract("Ada is 36")

    admin = redis.Redis.from_url(redis_url)
    admin.rpush(redis_backend.prefix + extract.cache.cache_key("Jason is 25"), "x")
    with capture_calls() as calls:
        asyncio.run(twice_then_a_neighbour())
    admin.close()

    assert outcomes(calls) == ["miss", "hit", "miss", "hit"]
    assert calls[0].miss_reason == "corrupt"
    assert fake_llm.count == 2


def test_asyncio_run_many_times_leaves_no_redis_connections_open(redis_backend):
    async def read() -> None:
        await redis_backend.aget("absent")
        await redis_backend.aset("present", "{}", ttl=60)

    asyncio.run(read())  # the first loop may open what stays open (imports, ...)
    before = open_fds()
    for _loop in range(200):
        asyncio.run(read())

    # Each loop's pool closed when asyncio.run() shut the loop down.
    assert open_fds() - before <= 2


def test_loops_closed_by_hand_do_not_keep_their_redis_clients(redis_backend):
    before = open_fds()
    for _loop in range(50):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(redis_backend.aget("absent"))
        loop.close()  # without shutdown_asyncgens(): nothing closes the pool on the loop
    gc.collect()

    # A new loop drops the clients of closed ones; collecting them closes their sockets.
    assert open_fds() - before <= 2


def unopenable(tmp_path: Path) -> Path:
    """A directory nobody can create, even root: its parent is a regular file."""
    parent = tmp_path / "file.txt"
    parent.write_text("not a directory")
    return parent / "cache"


def test_an_unopenable_cache_directory_is_skipped_with_one_logged_error(
    client, fake_llm, tmp_path, caplog, retry_after
):
    retry_after(0.0)  # no cool-down: every call looks at the backend again
    directory = unopenable(tmp_path)
    with caplog.at_level(logging.WARNING, logger="extractor"):
        backend = DiskBackend(directory)
        extract = cached_extraction(client, backend)
        with capture_calls() as calls:
            users = [extract("Jason is 25") for _call in range(4)]

    assert {user.name for user in users} == {"name of Jason is 25"}
    assert fake_llm.count == 4
    assert [(event.miss_reason, event.stored) for event in calls] == [("backend_error", False)] * 4
    assert "cannot be opened" in calls[0].error
    logged = [record for record in caplog.records if str(directory) in record.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelname == "ERROR"
    assert "EXTRACTOR_CACHE_URL" in logged[0].getMessage()
    problem = backend.problem()
    assert problem is not None
    assert "cannot be opened" in problem
    assert "Fix" in problem


def test_a_cache_directory_that_becomes_openable_is_used_without_a_restart(
    client, fake_llm, tmp_path, retry_after
):
    retry_after(0.0)
    directory = unopenable(tmp_path)
    backend = DiskBackend(directory)
    extract = cached_extraction(client, backend)
    extract("Jason is 25")

    directory.parent.unlink()  # the operator fixes it: now the directory can be made
    time.sleep(1.0)  # the backend tries the directory again at most once a second
    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
    assert calls[0].stored is True
    assert backend.problem() is None
    backend.close()


def test_a_cache_directory_deleted_while_in_use_is_noticed_recorded_and_recreated(
    client, disk_backend, fake_llm
):
    extract = cached_extraction(client, disk_backend)
    extract("Jason is 25")
    extract("Jason is 25")
    assert fake_llm.count == 1

    shutil.rmtree(disk_backend.directory)
    time.sleep(1.0)  # the directory is looked at once a second, on a get()
    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")

    # Not served from the deleted database: recorded, recomputed, stored anew.
    assert outcomes(calls) == ["miss", "hit"]
    assert (calls[0].miss_reason, calls[0].stored) == ("backend_error", True)
    assert "vanished" in calls[0].error
    assert (disk_backend.directory / "cache.db").exists()
    assert fake_llm.count == 2
    assert disk_backend.problem() is None


def test_a_deleted_cache_directory_is_reported_for_the_pages_before_any_call(disk_backend):
    disk_backend.set("key", "{}")
    assert disk_backend.problem() is None

    shutil.rmtree(disk_backend.directory)

    problem = disk_backend.problem()
    assert problem is not None
    assert "vanished" in problem
