"""diskcache on a local directory, shared by every process on the machine.

Reads skip `diskcache.Cache.get`: a prepared SELECT on a per-thread cursor of
diskcache's own connection reads the same row with a third of the Python
overhead, and has no unpickling path at all (a row diskcache would unpickle is
refused as corrupt). Writes, expiry, eviction and size limits stay diskcache's.

A directory that cannot be opened does not stop the process: the backend
reports itself unavailable (one error in the log, a banner on the pages) and
tries again at most once a second, so fixing the directory brings the cache
back without a restart. A directory deleted while in use is noticed within a
second (a stat riding on the clock read every get() makes anyway), recorded on
the call that notices it, and recreated.

Single-flight across the processes of the machine (see singleflight.py) uses
diskcache's own primitives in a second database under the same directory
(`single-flight/`), so locks never count as entries, are never evicted with
them and never show among the keys: `add(expire=lease)` is the lock (atomic,
and an expired lock counts as absent, which is the lease), a compare-and-delete
in a transaction the release.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from itertools import islice
from pathlib import Path

import diskcache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW, MODE_TEXT

from extractor.caching.backends.base import (
    FAILURE_SHOWN_FOR,
    CacheBackend,
    FlightStep,
    describe,
    first_report,
)
from extractor.caching.errors import BackendError, BackendUnavailable, CorruptValue, KeyFault

logger = logging.getLogger("extractor.caching")

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
# String keys only (raw = 1): what the decorator writes; diskcache pickles any other.
_SCAN_PAGE = (
    "SELECT rowid, key FROM Cache WHERE rowid > ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?) ORDER BY rowid LIMIT ?"
)
_SCAN_CHUNK = 1000
# Seconds between two looks at the directory (is it still the one we opened?).
_CHECK_EVERY = 1.0
# sqlite's words for a database it cannot reach at all, rather than one write it refuses.
_UNREACHABLE = ("unable to open", "disk i/o error", "no such table", "not a database")
FLIGHTS_DIRECTORY = "single-flight"
# A failure marker holds the error for the waiters to read, not a traceback.
_FAILURE_CHARS = 2000


class DiskBackend(CacheBackend):
    shares_flights = True

    def __init__(self, directory: str | os.PathLike[str], size_limit: int | None = None) -> None:
        self.directory = Path(directory)
        self._options: dict[str, object] = {
            # Recency bookkeeping on read would turn every hit into a write.
            "eviction_policy": "least-recently-stored",
            "statistics": False,
        }
        if size_limit is not None:
            self._options["size_limit"] = size_limit
        self.label = f"disk://{self.directory}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: diskcache.Cache | None = None
        self._flight_cache: diskcache.Cache | None = None  # opened at the first miss
        self._opened: tuple[int, int] | None = None  # (st_dev, st_ino) of the open database
        self.open_error = ""
        # time.time() of the next look at the directory; get() compares it with
        # the clock it reads anyway, so a healthy hit pays one float compare.
        self._check_at = 0.0
        # Logged once and reported by problem(); calls go through to the LLM.
        with contextlib.suppress(BackendUnavailable):
            self._open()
        # diskcache reopens its connections in a forked child; so do our cursors.
        os.register_at_fork(after_in_child=self._after_fork)

    @property
    def cache(self) -> diskcache.Cache:
        """The diskcache.Cache underneath; BackendUnavailable while it cannot be opened."""
        cache = self._cache
        if cache is None:
            raise BackendUnavailable(self.open_error)
        return cache

    def get(self, key: str) -> str | bytes | None:
        now = time.time()
        if now >= self._check_at:
            self._check_directory(now)
        try:
            cursor = self._local.cursor
        except AttributeError:
            cursor = self._local.cursor = self._new_cursor()
        try:
            row = cursor.execute(_SELECT_INLINE, (key, now)).fetchone()
            if row is not None:
                return row[0]  # type: ignore[no-any-return]
            row = cursor.execute(_SELECT_ANY, (key, now)).fetchone()
        except sqlite3.Error as exc:
            raise self._failure(BackendUnavailable, exc) from exc
        if row is None:
            return None
        mode, filename, value = row
        if mode == MODE_RAW:
            return value  # type: ignore[no-any-return]
        return self._read_large(mode, filename, value)

    def _new_cursor(self) -> sqlite3.Cursor:
        try:
            return self.cache._con.cursor()  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise self._failure(BackendUnavailable, exc) from exc

    def _forget_cursors(self) -> None:
        self._local = threading.local()

    def _after_fork(self) -> None:
        self._forget_cursors()
        self._lock = threading.Lock()  # a thread of the parent may have held it

    def _failure(self, kind: type[BackendError], exc: BaseException) -> BackendError:
        return kind(f"cache directory {self.directory}: {describe(exc)}")

    # -- the directory: opened, watched, reopened -----------------------------------

    def _open(self) -> None:
        try:
            cache = diskcache.Cache(str(self.directory), **self._options)
            opened = _identity(self.directory / DBNAME)
        except (OSError, sqlite3.Error) as exc:
            self._cache, self._opened = None, None
            self.open_error = (
                f"The cache directory {self.directory} cannot be opened ({describe(exc)}), "
                "so the cache is skipped and every call goes to the LLM. Fix: create it, "
                "writable by the user running cachesite, or point EXTRACTOR_CACHE_URL at "
                "a directory that is."
            )
            if first_report(self.open_error):
                logger.error("%s", self.open_error)
            raise BackendUnavailable(self.open_error) from exc
        old, self._cache, self._opened, self.open_error = self._cache, cache, opened, ""
        self._forget_cursors()
        if old is not None:
            old.close()

    def _check_directory(self, now: float) -> None:
        """Reopen a directory that could not be opened, or that vanished since."""
        with self._lock:
            if now < self._check_at:
                return  # another thread has just looked
            self._check_at = now + _CHECK_EVERY
            if self._cache is None:
                self._open()  # raises BackendUnavailable while it still cannot
                return
            if _identity(self.directory / DBNAME) == self._opened:
                return
            # Deleted (or replaced) under an open database: SQLite would go on
            # serving and storing in the unlinked file, invisible to everyone else.
            self._open()
            message = (
                f"the cache directory {self.directory} vanished while in use (deleted or "
                "replaced); recreated it, so entries cached before are gone"
            )
            if first_report(message):
                logger.error("%s", message)
            raise KeyFault(message)

    def problem(self) -> str | None:
        # A stat, and an attempt to open a broken directory at most once a second.
        if self._cache is None and time.time() >= self._check_at:
            with contextlib.suppress(BackendUnavailable):
                self._check_directory(time.time())
        if self._cache is None:
            return self.open_error
        if _identity(self.directory / DBNAME) != self._opened:
            return (
                f"The cache directory {self.directory} vanished while in use; the next "
                "call recreates it. Fix: do not delete it while cachesite runs."
            )
        if not os.access(self.directory, os.W_OK):
            return (
                f"The cache directory {self.directory} is read-only: hits are served, "
                "nothing new is cached. Fix: make it writable by the user running cachesite."
            )
        return super().problem()

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
            except (OSError, ValueError) as exc:  # unreadable, or not UTF-8
                raise CorruptValue(f"cannot read the value file {path}: {describe(exc)}") from exc
        raise CorruptValue(f"refusing a diskcache value stored in mode {mode} (pickle)")

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        try:
            self.cache.set(key, value, expire=ttl)
        except sqlite3.Error as exc:
            if any(words in str(exc).lower() for words in _UNREACHABLE):
                raise self._failure(BackendUnavailable, exc) from exc
            # Locked too long, read-only, full: this write is refused, reads go on.
            raise self._failure(KeyFault, exc) from exc
        except (OSError, diskcache.Timeout) as exc:  # a value file that cannot be written
            raise self._failure(KeyFault, exc) from exc

    # -- single-flight across processes ------------------------------------------------

    def _flights(self) -> diskcache.Cache:
        flights = self._flight_cache
        if flights is None:
            with self._lock:
                flights = self._flight_cache
                if flights is None:
                    flights = self._flight_cache = diskcache.Cache(
                        str(self.directory / FLIGHTS_DIRECTORY),
                        statistics=False,
                        eviction_policy="none",
                        # A lock that waits seconds for SQLite is worse than none.
                        timeout=1.0,
                    )
        return flights

    def flight_step(self, key: str, token: str, lease: float, seen: Collection[str]) -> FlightStep:
        value = self.get(key)
        if value is not None:
            return FlightStep("value", value)
        try:
            flights = self._flights()
            failure = flights.get("failed:" + key)
            if isinstance(failure, str):
                failed_holder, _, error = failure.partition("\n")
                if failed_holder in seen:
                    return FlightStep("failed", error)
            if flights.add("lock:" + key, token, expire=lease):
                # The holder before may have stored the value and let go between
                # the read above and the add: look again rather than compute twice.
                value = self.get(key)
                if value is not None:
                    self._release_lock(flights, key, token)
                    return FlightStep("value", value)
                return FlightStep("acquired")
            holder = flights.get("lock:" + key)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._failure(BackendUnavailable, exc) from exc
        return FlightStep("held", holder if isinstance(holder, str) else "")

    def flight_release(self, key: str, token: str, failure: str | None = None) -> None:
        try:
            flights = self._flights()
            if failure is not None:
                marker = f"{token}\n{failure[:_FAILURE_CHARS]}"
                flights.set("failed:" + key, marker, expire=FAILURE_SHOWN_FOR)
            self._release_lock(flights, key, token)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._failure(BackendUnavailable, exc) from exc

    @staticmethod
    def _release_lock(flights: diskcache.Cache, key: str, token: str) -> None:
        with flights.transact():
            if flights.get("lock:" + key) == token:
                flights.delete("lock:" + key)

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
        if self._cache is not None:
            self._cache.close()
        if self._flight_cache is not None:
            self._flight_cache.close()
            self._flight_cache = None

    def scan_keys(self) -> Iterator[str]:
        # Pages by rowid, one short read each: no read transaction held open while
        # the caller works, so writers are never kept waiting on a long scan.
        last = 0
        while True:
            try:
                rows = self.cache._con.execute(_SCAN_PAGE, (last, time.time(), _SCAN_CHUNK))
                page = rows.fetchall()
            except sqlite3.Error as exc:
                raise self._failure(BackendUnavailable, exc) from exc
            if not page:
                return
            for _rowid, key in page:
                yield key
            last = page[-1][0]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
