"""An in-process, thread-safe LRU with per-key TTL (one process only)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from extractor.caching.backends.base import CacheBackend


class MemoryBackend(CacheBackend):
    def __init__(self, maxsize: int = 10_000) -> None:
        if maxsize <= 0:
            raise ValueError("memory:// maxsize must be a positive number of entries")
        self.maxsize = maxsize
        self.label = f"memory://?maxsize={maxsize}"
        self._data: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires_at = item
            if expires_at is not None and expires_at <= time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        expires_at = time.monotonic() + ttl if ttl is not None else None
        with self._lock:
            self._data[key] = (value, expires_at)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def delete_many(self, keys: Iterable[str]) -> int:
        with self._lock:
            return sum(self._data.pop(key, None) is not None for key in keys)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def scan_keys(self) -> Iterator[str]:
        # A snapshot: the lock is not held while the caller works through it.
        now = time.monotonic()
        with self._lock:
            keys = [k for k, (_v, until) in self._data.items() if until is None or until > now]
        yield from keys
