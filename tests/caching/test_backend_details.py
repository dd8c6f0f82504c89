"""The details of each backend that the contract tests leave open: what Redis is
asked for (milliseconds), what a failure says, when a backend is shown as broken
on the pages and when its failure is logged again, how the async Redis client
lives and dies with its event loop, and which diskcache rows the disk backend
reads or refuses."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio

from extractor.caching import (
    CacheConfigurationError,
    DiskBackend,
    MemoryBackend,
    RedisBackend,
    backend_from_url,
)
from extractor.caching import backends as backends_module
from extractor.caching.backends import base, memory, shared_backend
from extractor.caching.backends.base import FAILURE_SHOWN_FOR, describe
from extractor.caching.errors import BackendUnavailable, CorruptValue, KeyFault

# -- helpers -----------------------------------------------------------------------------


@contextmanager
def redis_commands(redis_url: str, marker: str) -> Iterator[list[str]]:
    """The commands Redis runs inside the block (Lua's own included) that mention `marker`."""
    admin = redis.Redis.from_url(redis_url, socket_timeout=5)
    seen: list[str] = []
    with admin.monitor() as monitor:
        yield seen
        end = f"{marker}end-{uuid.uuid4().hex}"
        with redis.Redis.from_url(redis_url) as other:
            other.echo(end)
        while end not in (command := monitor.next_command()["command"]):
            if marker in command:
                seen.append(command)
    admin.close()


@contextmanager
def redis_user(redis_url: str, password: str, *rules: str) -> Iterator[str]:
    """A URL logged in as a Redis user with `rules` (an ACL), removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", *rules)
    scheme, rest = redis_url.split("://", 1)
    try:
        yield f"{scheme}://{name}:{password}@{rest}"
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def free_port() -> int:
    """A local port nothing listens on (a connection to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- redis://: what Redis is asked for ---------------------------------------------------


@pytest.mark.parametrize(("ttl", "px"), [(1.5, "1500"), (0.0001, "1")])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redis_ttl_is_sent_in_whole_milliseconds_and_never_below_one(
    redis_backend, redis_url, mode, ttl, px
):
    with redis_commands(redis_url, redis_backend.prefix) as commands:
        if mode == "sync":
            redis_backend.set("k1", "v", ttl=ttl)
        else:
            asyncio.run(redis_backend.aset("k1", "v", ttl=ttl))

    assert commands == [f"SET {redis_backend.prefix}k1 v PX {px}"]


@pytest.mark.parametrize(("lease", "px"), [(1.5, "1500"), (0.0001, "1")])
def test_a_single_flight_lease_is_sent_in_whole_milliseconds_and_never_below_one(
    redis_backend, redis_url, lease, px
):
    lock = f"{redis_backend.prefix}flight:lock:k1"
    with redis_commands(redis_url, lock) as commands:
        step = redis_backend.flight_step("k1", "token-1", lease, ())

    assert step.state == "acquired"
    assert f"SET {lock} token-1 PX {px}" in commands


def test_a_failed_computations_marker_lives_for_the_failure_display_time_in_milliseconds(
    redis_backend, redis_url
):
    marker = f"{redis_backend.prefix}flight:failed:k1"
    redis_backend.flight_step("k1", "token-1", 5.0, ())
    with redis_commands(redis_url, marker) as commands:
        redis_backend.flight_release("k1", "token-1", failure="boom")

    assert f"SET {marker} token-1\\nboom PX {int(FAILURE_SHOWN_FOR * 1000)}" in commands


# -- redis://: what a failure says -------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redis_user_refused_reads_and_writes_is_unavailable_for_reads_and_faults_a_write(
    redis_url, mode
):
    """NOPERM is a ResponseError like WRONGTYPE, but it is no one key's trouble on
    a read; a refused write (NOPERM, OOM, a read-only replica) is the key's."""
    with redis_user(redis_url, "hunter2-secret", "+@all", "-get", "-set") as url:
        backend = backend_from_url(url)
        try:
            if mode == "sync":
                read, write = backend.get, backend.set
            else:

                def read(key: str) -> object:
                    return asyncio.run(backend.aget(key))

                def write(key: str, value: str) -> object:
                    return asyncio.run(backend.aset(key, value))

            with pytest.raises(BackendUnavailable) as refused_read:
                read("k1")
            with pytest.raises(KeyFault) as refused_write:
                write("k1", "v")
        finally:
            backend.close()

    assert str(refused_read.value).startswith("NoPermissionError: ")
    assert "'get'" in str(refused_read.value)
    assert str(refused_write.value).startswith("NoPermissionError: ")
    assert "'set'" in str(refused_write.value)
    for shown in (str(refused_read.value), str(refused_write.value), backend.label):
        assert "hunter2-secret" not in shown


def test_an_unreachable_redis_names_the_connection_error_on_every_read_and_write():
    port = free_port()
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0")

    async def read_and_write() -> list[BaseException]:
        errors: list[BaseException] = []
        for attempt in (backend.aget("k1"), backend.aset("k1", "v")):
            try:
                await attempt
            except BackendUnavailable as exc:
                errors.append(exc)
        return errors

    try:
        errors: list[BaseException] = []
        for attempt in (lambda: backend.get("k1"), lambda: backend.set("k1", "v")):
            with pytest.raises(BackendUnavailable) as raised:
                attempt()
            errors.append(raised.value)
        errors += asyncio.run(read_and_write())
    finally:
        backend.close()

    assert len(errors) == 4
    for error in errors:
        assert str(error).startswith("ConnectionError: ")
        assert f"connecting to 127.0.0.1:{port}" in str(error)


def test_a_redis_key_of_another_type_is_a_corrupt_value_the_next_store_replaces(
    redis_backend, redis_url
):
    admin = redis.Redis.from_url(redis_url)
    admin.rpush(redis_backend.prefix + "k1", "not", "a", "value")
    admin.close()

    with pytest.raises(CorruptValue) as raised:
        redis_backend.get("k1")
    redis_backend.set("k1", "v")

    assert str(raised.value).startswith("ResponseError: WRONGTYPE")
    assert str(raised.value).endswith("not a cached value; the next store replaces it)")
    assert redis_backend.get("k1") == b"v"


# -- redis://: the async client and its event loop ---------------------------------------


def test_an_async_read_from_a_redis_that_never_answers_gives_up_within_the_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers a command
    backend = RedisBackend(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

    async def read() -> None:
        await asyncio.wait_for(backend.aget("k1"), timeout=10)

    started = time.perf_counter()
    try:
        with pytest.raises(BackendUnavailable, match="Timeout"):
            asyncio.run(read())
    finally:
        backend.close()
        silent.close()

    assert time.perf_counter() - started < 5


def test_an_event_loop_that_has_ended_is_not_kept_alive_by_its_redis_client(redis_backend):
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def use() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await redis_backend.aset("k1", "v")
        await redis_backend.aget("k1")

    asyncio.run(use())
    gc.collect()

    assert loops[0]() is None


def test_a_redis_client_that_fails_to_close_does_not_trouble_the_loops_shutdown(
    redis_backend, monkeypatch, caplog
):
    async def dead_on_close(self: redis.asyncio.Redis) -> None:
        raise redis.ConnectionError("Connection reset by peer")

    async def use() -> object:
        return await redis_backend.aget("k1")

    monkeypatch.setattr(redis.asyncio.Redis, "aclose", dead_on_close)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        assert asyncio.run(use()) is None

    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []


# -- every backend: health shown on the pages, failures logged once -----------------------


def test_a_backend_marked_unavailable_shows_the_error_and_the_fix_on_the_pages():
    backend = MemoryBackend(maxsize=3)
    error = f"ConnectionError: refused {uuid.uuid4().hex}"

    backend.mark_unavailable(error, time.perf_counter() + 5)
    problem = backend.problem()

    assert problem is not None
    assert f"The cache memory://?maxsize=3 cannot be reached ({error})" in problem
    assert "so every call goes to the LLM" in problem
    assert "Bring it back, or point EXTRACTOR_CACHE_URL at one that works." in problem


def test_a_connection_failure_stays_shown_for_a_minute_after_its_cool_down(monkeypatch):
    clock = FakeClock(10_000.0)
    monkeypatch.setattr(base, "perf_counter", clock)
    backend = MemoryBackend()
    backend.mark_unavailable(f"ConnectionError: {uuid.uuid4().hex}", until=10_005.0)

    clock.now = 10_065.0  # exactly a minute after the cool-down ended
    shown = backend.problem()
    clock.now = 10_065.5
    gone = backend.problem()

    assert shown is not None
    assert gone is None


def test_a_failure_is_news_again_once_the_backend_has_worked(monkeypatch):
    backend = MemoryBackend()
    error = f"ConnectionError: {uuid.uuid4().hex}"

    first = backend.mark_unavailable(error, time.perf_counter() + 1)
    repeated = backend.mark_unavailable(error, time.perf_counter() + 1)
    backend.mark_working()
    after_recovery = backend.mark_unavailable(error, time.perf_counter() + 1)

    assert (first, repeated, after_recovery) == (True, False, True)
    assert backend.problem() is not None


def test_an_ongoing_failure_is_logged_again_after_five_minutes(monkeypatch):
    clock = FakeClock(50_000.0)
    monkeypatch.setattr(base, "perf_counter", clock)
    backend = MemoryBackend()
    error = f"ConnectionError: {uuid.uuid4().hex}"

    news = []
    for now in (50_000.0, 50_299.9, 50_300.0):
        clock.now = now
        news.append(backend.mark_unavailable(error, now + 1))

    assert news == [True, False, True]


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (redis.ConnectionError("Connection refused"), "ConnectionError: Connection refused"),
        (TimeoutError(), "TimeoutError"),
        (OSError("  "), "OSError"),
    ],
)
def test_an_error_is_described_by_its_type_and_its_text_when_it_has_one(error, described):
    assert describe(error) == described


def test_an_empty_backend_is_still_a_backend_and_shows_its_class_and_label():
    backend = MemoryBackend(maxsize=3)

    assert len(backend) == 0
    assert bool(backend) is True
    assert repr(backend) == f"<MemoryBackend {backend.label}>"


# -- URLs and the shared backends --------------------------------------------------------


def test_threads_asking_for_one_url_at_once_share_one_backend(monkeypatch):
    monkeypatch.setattr(backends_module, "_shared", {})
    real_backend_from_url = backends_module.backend_from_url

    def slow_backend_from_url(url: str):
        time.sleep(0.05)  # the other threads arrive while the first one builds it
        return real_backend_from_url(url)

    monkeypatch.setattr(backends_module, "backend_from_url", slow_backend_from_url)
    start = threading.Barrier(6)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(shared_backend("memory://?maxsize=5"))

    threads = [threading.Thread(target=ask) for _thread in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(got) == 6
    assert all(backend is got[0] for backend in got)


def test_a_one_entry_memory_cache_keeps_the_latest_value():
    backend = backend_from_url("memory://?maxsize=1")

    backend.set("a", "1")
    backend.set("b", "2")

    assert backend.get("a") is None
    assert backend.get("b") == "2"


@pytest.mark.parametrize(
    "url", ["memory://?maxsize=0", "memory://?maxsize=-3", "disk:///tmp/x?size_limit=lots"]
)
def test_a_bad_number_in_a_url_is_refused_naming_the_url(url):
    with pytest.raises(CacheConfigurationError) as raised:
        backend_from_url(url)

    assert f"in {url!r} must be a positive whole number" in str(raised.value)


def test_an_unknown_url_is_shown_with_only_its_password_masked():
    with pytest.raises(CacheConfigurationError) as raised:
        backend_from_url("memcached://admin:hunter2@cache.local:11211")

    assert "'memcached://admin:***@cache.local:11211'" in str(raised.value)


# -- memory:// ---------------------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, -1])
def test_a_memory_backend_needs_room_for_at_least_one_entry(maxsize):
    with pytest.raises(ValueError, match=r"^memory:// maxsize must be a positive number"):
        MemoryBackend(maxsize=maxsize)


def test_a_memory_backend_of_one_entry_works_and_is_labelled_so():
    backend = MemoryBackend(maxsize=1)
    backend.set("a", "1")

    assert backend.get("a") == "1"
    assert backend.label == "memory://?maxsize=1"


def test_a_memory_value_is_gone_at_the_instant_its_ttl_ends(monkeypatch):
    clock = FakeClock(1_000.0)
    monkeypatch.setattr(memory, "time", SimpleNamespace(monotonic=clock))
    backend = MemoryBackend()

    backend.set("zero", "never served", ttl=0)
    backend.set("short", "served until 1005", ttl=5)
    zero = backend.get("zero")
    clock.now = 1_004.9
    before = backend.get("short")
    clock.now = 1_005.0
    at_the_end = backend.get("short")

    assert (zero, before, at_the_end) == (None, "served until 1005", None)


# -- disk:// -----------------------------------------------------------------------------


def unopenable(tmp_path: Path) -> Path:
    """A directory nobody can create, even root: its parent is a regular file."""
    parent = tmp_path / "file.txt"
    parent.write_text("not a directory")
    return parent / "cache"


def test_a_cache_database_that_lost_its_table_names_the_directory_and_the_error(disk_backend):
    disk_backend.set("k1", "v")
    assert disk_backend.get("k1") == "v"
    wiper = sqlite3.connect(disk_backend.directory / "cache.db")
    wiper.execute("DROP TABLE Cache")
    wiper.commit()
    wiper.close()

    with pytest.raises(BackendUnavailable) as read:
        disk_backend.get("k1")
    with pytest.raises(BackendUnavailable) as write:
        disk_backend.set("k1", "v")

    for error in (read.value, write.value):
        assert str(error) == (
            f"cache directory {disk_backend.directory}: OperationalError: no such table: Cache"
        )


def test_an_unopenable_directory_is_reported_on_the_pages_without_any_call(tmp_path):
    backend = DiskBackend(unopenable(tmp_path))

    problem = backend.problem()

    assert problem is not None
    assert problem == backend.open_error
    assert "cannot be opened" in problem


def test_the_pages_look_reopens_a_directory_fixed_since_before_any_call(tmp_path):
    directory = unopenable(tmp_path)
    backend = DiskBackend(directory)
    directory.parent.unlink()  # the operator fixes it

    try:
        problem = backend.problem()
        assert problem is None
        assert (directory / "cache.db").exists()
    finally:
        backend.close()


def test_the_pages_look_at_a_vanished_directory_reports_it_and_leaves_it_to_the_next_call(
    disk_backend,
):
    disk_backend.set("k1", "{}")
    shutil.rmtree(disk_backend.directory)

    problem = disk_backend.problem()

    assert problem is not None
    assert "the next call recreates it. Fix: do not delete it while cachesite runs." in problem
    assert not disk_backend.directory.exists()


def test_a_read_only_directory_is_reported_as_serving_hits_but_caching_nothing(
    disk_backend, monkeypatch
):
    real_access = os.access

    def access(path: object, mode: int, **options: object) -> bool:
        if Path(str(path)) == disk_backend.directory and mode == os.W_OK:
            return False  # as for a user without write permission (root always has it)
        return real_access(path, mode, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)

    problem = disk_backend.problem()

    assert problem is not None
    assert "is read-only: hits are served, nothing new is cached." in problem
    assert "Fix: make it writable by the user running cachesite." in problem


def test_a_large_binary_value_stored_by_diskcache_reads_back_as_bytes(disk_backend):
    value = bytes(range(256)) * 200  # over diskcache's 32 kB: a value file

    disk_backend.cache.set("k1", value)

    assert disk_backend.get("k1") == value


@pytest.mark.parametrize(
    "value", [{"small": "object"}, {"large": "x" * 100_000}], ids=["inline", "in-a-file"]
)
def test_a_value_diskcache_pickled_is_refused_as_corrupt(disk_backend, value):
    disk_backend.cache.set("k1", value)

    with pytest.raises(CorruptValue, match=r"\(pickle\)"):
        disk_backend.get("k1")


def test_an_unreadable_value_file_is_a_corrupt_value_naming_the_file(disk_backend):
    disk_backend.set("k1", "x" * 100_000)
    (value_file,) = disk_backend.directory.rglob("*.val")
    value_file.write_bytes(b"\xff\xfe not UTF-8")

    with pytest.raises(CorruptValue) as raised:
        disk_backend.get("k1")

    assert str(raised.value).startswith(f"cannot read the value file {value_file}: ")
    assert "UnicodeDecodeError" in str(raised.value)


def test_delete_many_on_disk_takes_more_keys_than_sqlite_takes_parameters(disk_backend):
    disk_backend.set("key-7", "v")
    keys = (f"key-{number}" for number in range(300_000))  # SQLite's limit is 250,000 at most

    assert disk_backend.delete_many(keys) == 1
    assert disk_backend.get("key-7") is None
