"""One computation per key at a time within a process.

When a hundred requests miss on the same key at once, one calls the LLM and
the rest wait for its answer instead of paying for ninety-nine more calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


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
