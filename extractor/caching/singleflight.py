"""One computation per key at a time: within a process, then across processes.

When a hundred requests miss on the same key at once, one calls the LLM and
the rest wait for its answer instead of paying for ninety-nine more calls.

Two layers. Threads (SingleFlight) and asyncio tasks (AsyncSingleFlight) of one
process coalesce in memory first; the one caller left per process then takes
the key's lock on a shared backend (Redis, diskcache: `run_shared`), so of N
processes one computes and the others read its stored value. memory:// is one
process's, so it stops at the first layer.

- Lease: the lock expires after EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS (by
  default the LLM timeout). A holder that dies (kill -9) blocks the others at
  most that long; then one of them takes the lock and computes. A computation
  that outlives its lease is not cut short, but one waiter starts a second one:
  a call paid twice, never a wrong value.
- Waiting: polling with backoff (5 ms doubling to 100 ms), each look one round
  trip (one Lua script on Redis) that reads the value, a failure marker and the
  lock together. Pub/sub would answer a little sooner, but needs a connection
  per waiting process held open and a subscribe-then-check dance against lost
  messages; with at most one waiter per process and per key, ten looks a second
  cost Redis nothing. The wait is bounded: after two leases a waiter computes
  on its own (logged).
- A failed computation: the holder leaves a short failure marker with the
  error's text and lets go; every caller that waited on that holder raises
  FlightFailed with that text at its next look (within 100 ms), and nothing is
  cached. Callers arriving later do not see it: they compute again. In the
  holder's own process, the waiting threads and tasks get the very exception.
  A holder that is cancelled (or interrupted) leaves no marker: a waiter takes over.
- Fail-open: when the lock cannot be taken or read (backend down, an ACL, a
  directory that refuses the lock database), the caller computes without it;
  logged once per outage and noted on the recorded miss.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from extractor.caching.backends.base import FlightStep, first_report
from extractor.caching.events import describe_error

if TYPE_CHECKING:
    from extractor.caching.backends.base import CacheBackend

logger = logging.getLogger("extractor.caching")

FIRST_DELAY = 0.005
MAX_DELAY = 0.1
# A waiter gives up after this many leases: one for a holder that died, one for
# the caller that took over from it.
WAIT_LEASES = 2.0


class _Flight:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """Return (result, shared): shared is True when another caller computed it."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result, True
        try:
            flight.result = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.result, False


class AsyncSingleFlight:
    def __init__(self) -> None:
        self._flights: dict[tuple[int, str], asyncio.Future[Any]] = {}

    async def run(self, key: str, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        existing = self._flights.get(slot)
        if existing is not None:
            try:
                return await asyncio.shield(existing), True
            except asyncio.CancelledError:
                if not existing.done():
                    raise  # this caller was cancelled while it waited
            # The caller computing the value was cancelled, not this one: compute it here.
            return await self.run(key, compute)
        future: asyncio.Future[Any] = loop.create_future()
        self._flights[slot] = future
        try:
            result = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; this keeps asyncio from warning about it.
            future.exception()
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._flights[slot]


class FlightFailed(RuntimeError):
    """The computation this caller waited for, in another process, failed."""


# compute(note): computes, stores and records the value; `note` is why the
# cross-process lock was not used (recorded on the miss), or None.
Compute = Callable[[str | None], Any]
AsyncCompute = Callable[[str | None], Awaitable[Any]]
# read(raw): the caller's result from a stored value; raises when it is unreadable.
Read = Callable[[str | bytes], Any]


class _Waiting:
    """The state of one caller's wait: the holders it has seen, its deadline, its pace."""

    def __init__(self, lease: float) -> None:
        self.token = uuid.uuid4().hex
        self.lease = lease
        self.seen: set[str] = set()
        self.started = time.monotonic()
        self.delay = FIRST_DELAY

    def held_by(self, step: FlightStep) -> float | None:
        """Seconds to sleep before the next look, or None when the wait is over."""
        if isinstance(step.detail, str) and step.detail:
            self.seen.add(step.detail)
        if time.monotonic() - self.started >= WAIT_LEASES * self.lease:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, MAX_DELAY)
        return delay

    def gave_up(self, key: str) -> str:
        waited = time.monotonic() - self.started
        note = (
            f"waited {waited:.1f} s (two single-flight leases) for another caller's value; "
            "computed without the lock"
        )
        logger.warning("key %s: %s", key, note)
        return note


def _failure_text(step: FlightStep) -> str:
    detail = step.detail
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
    return f"another caller's computation of this key failed: {text}"


def _lock_failed(backend: CacheBackend, exc: BaseException) -> str:
    note = f"single-flight lock unavailable, computed without it: {describe_error(exc)}"
    # Keyed on the error alone: an outage the backend has logged already (the
    # same message) is not logged again for its lock.
    if first_report(str(exc)):
        logger.warning("%s (%s)", note, backend.label)
    return note


def _failure_of(exc: BaseException) -> str | None:
    # Cancelled or interrupted is not the computation failing: a waiter takes over.
    return describe_error(exc) if isinstance(exc, Exception) else None


def _released(backend: CacheBackend, exc: BaseException) -> None:
    # The lease frees the key anyway; waiters meanwhile still see a stored value.
    if first_report(str(exc)):
        logger.warning("could not release a single-flight lock on %s: %s", backend.label, exc)


def run_shared(
    backend: CacheBackend, key: str, compute: Compute, read: Read, *, lease: float
) -> tuple[Any, bool]:
    """(result, coalesced): coalesced is True when another process computed it."""
    wait = _Waiting(lease)
    while True:
        try:
            step = backend.flight_step(key, wait.token, lease, wait.seen)
        except Exception as exc:
            return compute(_lock_failed(backend, exc)), False
        if step.state == "value":
            try:
                return read(step.detail), True
            except Exception:
                return compute(None), False  # unreadable: this miss replaces it
        if step.state == "failed":
            raise FlightFailed(_failure_text(step))
        if step.state == "acquired":
            try:
                result = compute(None)
            except BaseException as exc:
                try:
                    backend.flight_release(key, wait.token, _failure_of(exc))
                except Exception as release_error:
                    _released(backend, release_error)
                raise
            try:
                backend.flight_release(key, wait.token)
            except Exception as release_error:
                _released(backend, release_error)
            return result, False
        delay = wait.held_by(step)
        if delay is None:
            return compute(wait.gave_up(key)), False
        time.sleep(delay)


async def arun_shared(
    backend: CacheBackend, key: str, compute: AsyncCompute, read: Read, *, lease: float
) -> tuple[Any, bool]:
    """run_shared for coroutines: the same steps, awaited, sleeping without the loop."""
    wait = _Waiting(lease)
    while True:
        try:
            step = await backend.aflight_step(key, wait.token, lease, wait.seen)
        except Exception as exc:
            return await compute(_lock_failed(backend, exc)), False
        if step.state == "value":
            try:
                return read(step.detail), True
            except Exception:
                return await compute(None), False
        if step.state == "failed":
            raise FlightFailed(_failure_text(step))
        if step.state == "acquired":
            try:
                result = await compute(None)
            except BaseException as exc:
                try:
                    await backend.aflight_release(key, wait.token, _failure_of(exc))
                except Exception as release_error:
                    _released(backend, release_error)
                raise
            try:
                await backend.aflight_release(key, wait.token)
            except Exception as release_error:
                _released(backend, release_error)
            return result, False
        delay = wait.held_by(step)
        if delay is None:
            return await compute(wait.gave_up(key)), False
        await asyncio.sleep(delay)
