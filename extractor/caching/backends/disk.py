"""diskcache on a local directory, shared by every process on the machine.

Reads skip `diskcache.Cache.get`: a prepared SELECT on a per-thread cursor of
diskcache's own connection reads the same row with a third of the Python
overhead, and has no unpickling path at all (a row diskcache would unpickle is
refused as corrupt). Writes, expiry, eviction and size limits stay diskcache's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from extractor.caching.backends.base import CacheBackend
from extractor.caching.errors import CorruptValue

# Text under diskcache's file threshold (32 kB) is stored inline: one column.
_SELECT_INLINE = (
    "SELECT value FROM Cache WHERE key = ? AND raw = 1 AND mode = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)
_DELETE_CHUNK = 500
_SELECT_ANY = (
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
        self._local = threading.local()
        # diskcache reopens its connections in a forked child; so do our cursors.
        os.register_at_fork(after_in_child=self._forget_cursors)

    def get(self, key: str) -> str | bytes | None:
        try:
            cursor = self._local.cursor
        except AttributeError:
            cursor = self._local.cursor = self.cache._con.cursor()
        now = time.time()
        row = cursor.execute(_SELECT_INLINE, (key, now)).fetchone()
        if row is not None:
            return row[0]  # type: ignore[no-any-return]
        row = cursor.execute(_SELECT_ANY, (key, now)).fetchone()
        if row is None:
            return None
        mode, filename, value = row
        if mode == MODE_RAW:
            return value  # type: ignore[no-any-return]
        return self._read_large(mode, filename, value)

    def _forget_cursors(self) -> None:
        self._local = threading.local()

    def _read_large(self, mode: int, filename: str | None, value: object) -> str | bytes | None:
        if mode == MODE_BINARY and filename is None:
            return bytes(value)  # type: ignore[call-overload,no-any-return]
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
        # Whole chunks per statement inside one of diskcache's transactions: a
        # delete per key would make a 100k-entry invalidation take minutes.
        # diskcache's triggers keep its count and size; value files go after.
        removed = 0
        files: list[str] = []
        with self.cache.transact():
            con = self.cache._con
            iterator = iter(keys)
            while chunk := list(islice(iterator, _DELETE_CHUNK)):
                marks = ", ".join("?" * len(chunk))
                rows = con.execute(
                    f"SELECT rowid, filename FROM Cache WHERE raw = 1 AND key IN ({marks})", chunk
                ).fetchall()
                if rows:
                    rowids = [rowid for rowid, _filename in rows]
                    con.execute(
                        f"DELETE FROM Cache WHERE rowid IN ({', '.join('?' * len(rowids))})",
                        rowids,
                    )
                    files.extend(filename for _rowid, filename in rows if filename)
                    removed += len(rows)
        for filename in files:
            self.cache.disk.remove(filename)
        return removed

    def clear(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        self._forget_cursors()
        self.cache.close()
