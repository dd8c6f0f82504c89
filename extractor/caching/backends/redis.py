"""Redis, shared by every process that can reach it.

Keys carry a prefix so one Redis can hold several caches (and so the cache can
be cleared without touching anything else). Timeouts are short on purpose: an
unreachable Redis must cost the caller milliseconds, not seconds, before the
call falls through to the LLM.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Iterable
from itertools import islice
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio

from extractor.caching.backends.base import CacheBackend

DEFAULT_PREFIX = "cachesite:"
_CHUNK = 1000
_GLOB_SPECIAL = re.compile(r"[\\*?\[\]]")


class RedisBackend(CacheBackend):
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
        # redis.asyncio connections belong to the loop that opened them.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()

    def get(self, key: str) -> bytes | None:
        # execute_command directly: Redis.get is a wrapper around exactly this call.
        return self._execute("GET", self.prefix + key)  # type: ignore[no-any-return,no-untyped-call]

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        self.client.set(self.prefix + key, value, px=px)

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

    async def aget(self, key: str) -> bytes | None:
        return await self._async_client().get(self.prefix + key)  # type: ignore[no-any-return]

    async def aset(self, key: str, value: str, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        await self._async_client().set(self.prefix + key, value, px=px)

    def _async_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.url, **self._options)
            self._async_clients[loop] = client
        return client


def _batched(iterable: Iterable[Any]) -> Iterable[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, _CHUNK)):
        yield chunk


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
