"""diskcache on a local directory, shared by every process on the machine.

Reads skip `diskcache.Cache.get` and run its own SELECT on its own connection:
the same row, about half the Python overhead, and no unpickling path at all (a
row diskcache would unpickle is refused as corrupt). Writes, expiry, eviction
and size limits stay diskcache's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from extractor.caching.backends.base import CacheBackend
from extractor.caching.errors import CorruptValue

_SELECT = (
    "SELECT mode, filename, value FROM Cache"
    " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
)


class DiskBackend(CacheBackend):
    def __init__(self, directory: str | os.PathLike[str], size_limit: int | None = None) -> None:
        self.directory = Path(directory)
        options: dict[str, object] = {
            # Recency bookkeeping on read would turn every hit into a write.
            "eviction_policy": "least-recently-stored",
            "statistics": False,
        }
        if size_limit is not None:
            options["size_limit"] = size_limit
        self.cache = diskcache.Cache(str(self.directory), **options)
        self.label = f"disk://{self.directory}"

    def get(self, key: str) -> str | bytes | None:
        row = self.cache._con.execute(_SELECT, (key, time.time())).fetchone()
        if row is None:
            return None
        mode, filename, value = row
        if mode == MODE_RAW:
            return value  # type: ignore[no-any-return]
        return self._read_large(mode, filename, value)

    def _read_large(self, mode: int, filename: str | None, value: object) -> str | bytes | None:
        if mode == MODE_BINARY and filename is None:
            return bytes(value)  # type: ignore[call-overload]
        if mode in (MODE_TEXT, MODE_BINARY) and filename:
            path = self.directory / filename
            try:
                if mode == MODE_TEXT:
                    return path.read_text(encoding="utf-8")
                return path.read_bytes()
            except FileNotFoundError:
                return None  # deleted between the SELECT and the read
        raise CorruptValue(f"refusing a diskcache value stored in mode {mode} (pickle)")

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.cache.set(key, value, expire=ttl)

    def delete_many(self, keys: Iterable[str]) -> int:
        # One transaction for the lot: a commit per key would make a bulk
        # invalidation of 100k entries take minutes.
        with self.cache.transact():
            return sum(bool(self.cache.delete(key)) for key in keys)

    def clear(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        self.cache.close()
