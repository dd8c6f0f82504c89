"""Single-flight across threads, tasks and processes, counted at the fake provider.

Real parts: a real Redis, diskcache directories, processes started afresh
(tests/caching/flight_worker.py) that reach the fake provider over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from extractor.caching import DiskBackend, backend_from_url, capture_calls, instructor_cache
from extractor.caching.backends.disk import FLIGHTS_DIRECTORY
from extractor.caching.defaults import state as cache_defaults
from extractor.caching.events import CallEvent, CoalescedHit
from tests.caching.support import UserDetail, cached_extraction
from tests.fake_llm import FakeLLM
from tests.redis_server import free_port

# Runs the library in other processes: mutmut's mutated copy cannot be imported there,
# so `make mutate` leaves these tests out (README "Mutation testing").
pytestmark = pytest.mark.processes

REPOSITORY = Path(__file__).resolve().parents[2]
ANSWER = {"name": "name of Jason is 25", "age": 12}


class Worker:
    """A flight_worker process, reused call after call (starting one takes seconds)."""

    def __init__(self, base_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.caching.flight_worker", base_url],
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._expect("started")

    def prepare(self, cache_url: str, text: str, lease: float) -> None:
        self._send(json.dumps({"cache_url": cache_url, "text": text, "lease": lease}))
        self._expect("ready")

    def go(self) -> None:
        self._send("go")

    def report(self) -> dict[str, Any]:
        return json.loads(self._line())  # type: ignore[no-any-return]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            assert self.process.stderr is not None
            raise AssertionError(f"the worker stopped: {self.process.stderr.read()}")
        return line.strip()

    def _expect(self, word: str) -> None:
        line = self._line()
        assert line == word, line


class Workers:
    """Four worker processes shared by this module's tests; a killed one is replaced."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        with ThreadPoolExecutor(max_workers=4) as pool:
            self.all = list(pool.map(lambda _: Worker(base_url), range(4)))

    def ready(self, n: int, cache_url: str, *, lease: float = 20.0) -> list[Worker]:
        self.all = [w if w.process.poll() is None else Worker(self.base_url) for w in self.all]
        batch = self.all[:n]
        for worker in batch:
            worker.prepare(cache_url, "Jason is 25", lease)
        return batch

    def close(self) -> None:
        for worker in self.all:
            if worker.process.poll() is None:
                worker.kill()


@pytest.fixture(scope="module")
def process_pool(_fake_llm_server: FakeLLM) -> Iterator[Workers]:
    pool = Workers(_fake_llm_server.base_url)
    yield pool
    pool.close()


@pytest.fixture
def workers(process_pool: Workers, fake_llm: FakeLLM) -> Callable[..., list[Worker]]:
    """n workers of the pool, prepared for one call each on `cache_url`."""
    return process_pool.ready


def release(batch: list[Worker]) -> list[dict[str, Any]]:
    for worker in batch:
        worker.go()
    return [worker.report() for worker in batch]


# -- within one process ------------------------------------------------------------


def test_fifty_threads_missing_one_new_key_make_one_provider_request(
    client, disk_backend, fake_llm
):
    extract = cached_extraction(client, disk_backend)
    fake_llm.stall(0.3)
    start = threading.Barrier(50)

    def one(_: int) -> tuple[UserDetail, list[Any]]:
        start.wait()
        with capture_calls() as calls:
            return extract("Jason is 25"), calls

    with ThreadPoolExecutor(max_workers=50) as pool:
        done = list(pool.map(one, range(50)))

    assert fake_llm.count == 1
    assert all(user.model_dump() == ANSWER for user, _ in done)
    kinds = [type(record).__name__ for _, calls in done for record in calls]
    assert sorted(kinds) == ["CallEvent"] + ["CoalescedHit"] * 49


def test_twenty_asyncio_tasks_on_redis_make_one_provider_request(aclient, redis_backend, fake_llm):
    @instructor_cache(backend=redis_backend)
    async def extract(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    fake_llm.stall(0.3)

    async def stampede() -> list[UserDetail]:
        return await asyncio.gather(*(extract("Jason is 25") for _ in range(20)))

    with capture_calls() as calls:
        users = asyncio.run(stampede())

    assert fake_llm.count == 1
    assert [user.model_dump() for user in users] == [ANSWER] * 20
    assert sum(type(record) is CoalescedHit for record in calls) == 19


# -- across processes --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "disk"])
def test_four_processes_missing_one_new_key_make_one_provider_request(
    kind, workers, fake_llm, redis_cache_url, tmp_path
):
    cache_url = redis_cache_url if kind == "redis" else f"disk://{tmp_path / 'shared'}"
    batch = workers(4, cache_url)
    fake_llm.stall(0.5)

    reports = release(batch)

    assert fake_llm.count == 1
    assert [report["user"] for report in reports] == [ANSWER] * 4
    assert sorted(report["coalesced"] for report in reports) == [False, True, True, True]


def test_a_failing_provider_reaches_every_waiting_process_promptly_and_caches_nothing(
    workers, fake_llm, redis_cache_url
):
    lease = 20.0
    batch = workers(4, redis_cache_url, lease=lease)
    fake_llm.stall(0.5)
    fake_llm.fail_next(500, message="the provider is down")

    reports = release(batch)

    # One request: nobody retried (a retry would have been answered: one failure only).
    assert fake_llm.count == 1
    assert all("error" in report for report in reports)
    assert all("the provider is down" in report["error"] for report in reports)
    # The holder gets the provider's error, the processes that waited for it the same text.
    assert sorted(report["error"].startswith("FlightFailed") for report in reports) == [
        False,
        True,
        True,
        True,
    ]
    assert max(report["seconds"] for report in reports) < 3  # well under the lease
    backend = backend_from_url(redis_cache_url)
    assert backend.get(reports[0]["key"]) is None
    backend.close()


# -- the lock fails: callers go through --------------------------------------------


def test_processes_on_an_unreachable_redis_each_compute_without_an_error(workers, fake_llm):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    batch = workers(3, dead)

    reports = release(batch)

    assert fake_llm.count == 3
    assert [report["user"] for report in reports] == [ANSWER] * 3
    assert not any(report["coalesced"] for report in reports)


def test_a_holder_killed_mid_call_blocks_the_others_at_most_for_the_lease(
    workers, fake_llm, redis_cache_url
):
    lease = 2.0
    holder, *waiters = workers(3, redis_cache_url, lease=lease)
    fake_llm.stall(10)  # the holder's request never comes back
    holder.go()
    deadline = time.monotonic() + 10
    while fake_llm.count < 1:  # the holder holds the lock and is calling the LLM
        assert time.monotonic() < deadline, "the holder never reached the provider"
        time.sleep(0.01)
    fake_llm.stall(0)  # read per request: the next one is answered at once
    for worker in waiters:
        worker.go()
    time.sleep(0.2)  # the waiters find the lock held
    holder.kill()

    reports = [worker.report() for worker in waiters]

    assert fake_llm.count == 2
    assert [report["user"] for report in reports] == [ANSWER] * 2
    assert sorted(report["coalesced"] for report in reports) == [False, True]
    # From their release: the rest of the dead holder's lease, then one call.
    assert max(report["seconds"] for report in reports) < lease + 1.5


def test_a_lock_that_cannot_be_taken_lets_the_call_through_noted_and_logged_once(
    client, tmp_path, fake_llm, caplog
):
    directory = tmp_path / "lock-refused"
    directory.mkdir()
    (directory / FLIGHTS_DIRECTORY).write_text("not a directory")  # the lock database
    backend = DiskBackend(directory)
    extract = cached_extraction(client, backend)

    with caplog.at_level(logging.WARNING, "extractor.caching"), capture_calls() as calls:
        first = extract("Jason is 25")
        second = extract("Sarah is 31")

    assert [first.name, second.name] == ["name of Jason is 25", "name of Sarah is 31"]
    assert fake_llm.count == 2
    misses = [record for record in calls if isinstance(record, CallEvent)]
    assert all("single-flight lock unavailable" in (miss.error or "") for miss in misses)
    assert all(miss.stored for miss in misses)  # the cache itself still works
    assert len([r for r in caplog.records if "single-flight" in r.getMessage()]) == 1
    backend.close()


def test_the_lease_defaults_to_the_llm_timeout(monkeypatch):
    from extractor.caching.defaults import _lease_from_environment

    monkeypatch.delenv("EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS", raising=False)
    monkeypatch.setenv("EXTRACTOR_LLM_TIMEOUT", "42")
    assert _lease_from_environment() == 42.0
    monkeypatch.setenv("EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS", "7.5")
    assert _lease_from_environment() == 7.5
    assert cache_defaults.single_flight_lease > 0


@pytest.mark.django_db
def test_the_lease_setting_reaches_the_library(settings):
    from extractor.caching.defaults import current

    settings.EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS = 7.0

    assert current().single_flight_lease == 7.0
