"""Redis, shared by every process that can reach it.

Keys carry a prefix so one Redis can hold several caches (and so the cache can
be cleared without touching anything else). Timeouts are short on purpose: an
unreachable Redis must cost the caller milliseconds, not seconds, before the
call falls through to the LLM.

Errors are sorted by what they say about the rest of the cache: a connection
that fails is the whole Redis (BackendUnavailable); a refused write (out of
memory, a read-only replica) or a key holding a list or hash is that key's
(KeyFault, CorruptValue), and reads of every other key go on.

redis.asyncio connections belong to the event loop that opened them, so there
is one async client per loop, closed when its loop shuts down.

Single-flight across processes (see singleflight.py): a lock per key, SET NX PX
with a token (its lease), and a compare-and-delete release, both in Lua so a
look at the value, the failure marker and the lock is one atomic round trip.
Lock and marker keys live under the prefix ("<prefix>flight:lock:<key>",
"<prefix>flight:failed:<key>"), so an ACL limited to the prefix still allows
them; cache keys are hex digests, so they never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncGenerator, Collection, Iterable, Iterator
from itertools import islice
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio

from extractor.caching.backends.base import FAILURE_SHOWN_FOR, CacheBackend, FlightStep, describe
from extractor.caching.errors import BackendUnavailable, CorruptValue, KeyFault

DEFAULT_PREFIX = "cachesite:"
# Under the prefix, the keys of single-flight locks and failure markers; cache
# keys are hex digests, so they never start with it.
FLIGHT_NAMESPACE = "flight:"
_CHUNK = 1000
_GLOB_SPECIAL = re.compile(r"[\\*?\[\]]")
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)

# KEYS: value, lock, failure marker. ARGV: token, lease (ms), then the tokens of
# the holders this caller has seen. A failure marker is "<token>\n<error>"; it is
# news only to callers that saw that token hold the lock (a later caller retries).
_FLIGHT_STEP = """
local value = redis.call('GET', KEYS[1])
if value then return {'value', value} end
local failure = redis.call('GET', KEYS[3])
if failure then
  local failed_holder = string.match(failure, '^[^\\n]*')
  for i = 3, #ARGV do
    if ARGV[i] == failed_holder then
      return {'failed', string.sub(failure, #failed_holder + 2)}
    end
  end
end
local holder = redis.call('GET', KEYS[2])
if holder then return {'held', holder} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'acquired', ''}
"""
# KEYS: lock, failure marker. ARGV: token, "1" when it failed, error, marker's life (ms).
_FLIGHT_RELEASE = """
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], ARGV[1] .. '\\n' .. ARGV[3], 'PX', ARGV[4])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBackend(CacheBackend):
    shares_flights = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.25,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
        }
        self.client = redis.Redis.from_url(url, **self._options)
        self._execute = self.client.execute_command
        self.label = f"{_without_password(url)} prefix={prefix!r}"
        # Plain dicts: a loop's client refers to its loop, so a weak-keyed dict
        # would never let either go (one leaked pool per asyncio.run()).
        self._async_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        # Reentrant: finishing a closer (under the lock) runs its `finally`, which drops
        # its entries under the lock too.
        self._async_lock = threading.RLock()
        self._step = self.client.register_script(_FLIGHT_STEP)
        self._release = self.client.register_script(_FLIGHT_RELEASE)

    def get(self, key: str) -> bytes | None:
        try:
            # execute_command directly: Redis.get is a wrapper around exactly this call.
            return self._execute("GET", self.prefix + key)  # type: ignore[no-any-return,no-untyped-call]
        except Exception as exc:
            raise _read_failed(exc) from exc

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        try:
            self.client.set(self.prefix + key, value, px=px)
        except Exception as exc:
            raise _write_failed(exc) from exc

    def delete_many(self, keys: Iterable[str]) -> int:
        removed = 0
        iterator = iter(keys)
        while chunk := [self.prefix + key for key in islice(iterator, _CHUNK)]:
            removed += int(self.client.unlink(*chunk))  # type: ignore[arg-type]
        return removed

    def clear(self) -> None:
        # The prefix is matched literally: a "*" or "?" in it must not reach other keys.
        pattern = _GLOB_SPECIAL.sub(r"\\\g<0>", self.prefix) + "*"
        for keys in _batched(self.client.scan_iter(match=pattern, count=_CHUNK)):
            self.client.unlink(*keys)

    def close(self) -> None:
        self.client.close()
        with self._async_lock:
            self._forget_closed_loops()

    async def aget(self, key: str) -> bytes | None:
        client = self._async_clients.get(asyncio.get_running_loop())
        if client is None:
            client = await self._open_async_client()
        try:
            return await client.get(self.prefix + key)  # type: ignore[no-any-return]
        except Exception as exc:
            raise _read_failed(exc) from exc

    async def aset(self, key: str, value: str, ttl: float | None = None) -> None:
        client = self._async_clients.get(asyncio.get_running_loop())
        if client is None:
            client = await self._open_async_client()
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        try:
            await client.set(self.prefix + key, value, px=px)
        except Exception as exc:
            raise _write_failed(exc) from exc

    # -- single-flight across processes ------------------------------------------------

    def _flight_keys(self, key: str) -> list[str]:
        flights = self.prefix + FLIGHT_NAMESPACE
        return [self.prefix + key, f"{flights}lock:{key}", f"{flights}failed:{key}"]

    def flight_step(self, key: str, token: str, lease: float, seen: Collection[str]) -> FlightStep:
        try:
            reply = self._step(self._flight_keys(key), [token, _ms(lease), *seen])
        except Exception as exc:
            raise BackendUnavailable(describe(exc)) from exc
        return _step_of(reply)

    def flight_release(self, key: str, token: str, failure: str | None = None) -> None:
        try:
            self._release(self._flight_keys(key)[1:], _release_args(token, failure))
        except Exception as exc:
            raise BackendUnavailable(describe(exc)) from exc

    async def aflight_step(
        self, key: str, token: str, lease: float, seen: Collection[str]
    ) -> FlightStep:
        client = self._async_clients.get(asyncio.get_running_loop())
        if client is None:
            client = await self._open_async_client()
        try:
            step = client.register_script(_FLIGHT_STEP)
            reply = await step(self._flight_keys(key), [token, _ms(lease), *seen])
        except Exception as exc:
            raise BackendUnavailable(describe(exc)) from exc
        return _step_of(reply)

    async def aflight_release(self, key: str, token: str, failure: str | None = None) -> None:
        client = self._async_clients.get(asyncio.get_running_loop())
        if client is None:
            client = await self._open_async_client()
        try:
            release = client.register_script(_FLIGHT_RELEASE)
            await release(self._flight_keys(key)[1:], _release_args(token, failure))
        except Exception as exc:
            raise BackendUnavailable(describe(exc)) from exc

    async def _open_async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        with self._async_lock:
            self._forget_closed_loops()
            client = self._async_clients.get(loop)
            if client is not None:
                return client
            client = redis.asyncio.Redis.from_url(self.url, **self._options)
            closer = self._closes_with(loop, client)
            self._async_clients[loop] = client
            self._closers[loop] = closer
        # Started on the loop, the generator is one the loop finalises when it
        # shuts down: asyncio.run(), asyncio.Runner and asgiref all await
        # loop.shutdown_asyncgens(), which runs the `finally` below while the
        # loop can still close the connections properly.
        await closer.__anext__()
        return client

    async def _closes_with(
        self, loop: asyncio.AbstractEventLoop, client: redis.asyncio.Redis
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._async_lock:
                self._async_clients.pop(loop, None)
                self._closers.pop(loop, None)
            if not loop.is_closed():
                # A Redis that died meanwhile must not turn the loop's shutdown
                # into an error report: its connections are gone either way.
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops closed without shutting down their async
        generators (a hand-run loop); garbage collection closes their sockets."""
        for loop in [loop for loop in list(self._closers) if loop.is_closed()]:
            closer = self._closers[loop]
            # Finish the generator here (its loop is closed, so it awaits nothing):
            # left to the garbage collector, it would ask the closed loop to finish it.
            with contextlib.suppress(StopIteration):
                closer.aclose().send(None)
            self._async_clients.pop(loop, None)
            self._closers.pop(loop, None)

    def scan_keys(self) -> Iterator[str]:
        # SCAN, never KEYS: KEYS blocks the server for the whole keyspace.
        pattern = _GLOB_SPECIAL.sub(r"\\\g<0>", self.prefix) + "*"
        start = len(self.prefix)
        try:
            for raw in self.client.scan_iter(match=pattern, count=_CHUNK):
                key = raw.decode("utf-8", "replace")[start:]
                if not key.startswith(FLIGHT_NAMESPACE):  # single-flight locks, not values
                    yield key
        except redis.RedisError as exc:
            raise BackendUnavailable(describe(exc)) from exc


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _step_of(reply: Any) -> FlightStep:
    state, detail = reply
    name = state.decode() if isinstance(state, bytes) else str(state)
    if name not in ("value", "failed", "held", "acquired"):
        raise BackendUnavailable(f"unexpected single-flight reply {name!r}")
    if name != "value" and isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return FlightStep(name, detail)  # type: ignore[arg-type]


def _release_args(token: str, failure: str | None) -> list[str | int]:
    failed = failure is not None
    return [token, "1" if failed else "0", failure or "", _ms(FAILURE_SHOWN_FOR)]


def _read_failed(exc: Exception) -> Exception:
    if isinstance(exc, redis.ResponseError) and str(exc).startswith("WRONGTYPE"):
        return CorruptValue(
            f"{describe(exc)} (the key holds a list, hash or other Redis type, not a "
            "cached value; the next store replaces it)"
        )
    # A read refused for any other reason (NOPERM, LOADING, a cluster that is
    # down) is refused for every key, as a dead connection is.
    return BackendUnavailable(describe(exc))


def _write_failed(exc: Exception) -> Exception:
    if isinstance(exc, (redis.ResponseError, redis.DataError)):
        # Out of memory, a read-only replica, a failed save (MISCONF): this write
        # is refused, reads still work; Redis is used read-only meanwhile.
        return KeyFault(describe(exc))
    return BackendUnavailable(describe(exc))


def _batched(iterable: Iterable[Any]) -> Iterable[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, _CHUNK)):
        yield chunk


def _without_password(url: str) -> str:
    # redis-py also takes the password from the query string (?password=...).
    url = _PASSWORD_PARAMETER.sub(r"\g<1>***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
