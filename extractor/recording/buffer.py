"""Buffers call events in memory and writes them to the database in batches.

Recording a hit is one deque.append (tens of nanoseconds, no lock, no check).
A background thread drains the deque: at once while there is a batch's worth
waiting, otherwise every EXTRACTOR_RECORD_FLUSH_SECONDS, and one last time when
the process exits normally or on SIGTERM/SIGINT (extractor/recording/shutdown.py).

The buffer is bounded, but not by deque(maxlen=...): a full deque with maxlen
discards its oldest item on append without telling anyone. The deque has no
bound and a guard thread cuts it back to EXTRACTOR_RECORD_BUFFER_MAX every
GUARD_SECONDS, so every dropped record is popped, hence counted, by us
(`dropped`), and each overflow episode is logged once with its count.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
)

from extractor.caching.events import Record
from extractor.recording.writer import write_events

logger = logging.getLogger("extractor.recording")

BATCH_SIZE = 5000
# How often the guard applies the bound: the buffer can overshoot it by what
# the callers append in this time (a few thousand records at the highest rates).
GUARD_SECONDS = 0.05
# An overflow episode is reported once it has been quiet this long...
EPISODE_QUIET_SECONDS = 1.0
# ...or, if it goes on (a database away for long), every this often.
EPISODE_REPORT_SECONDS = 60.0
# A failing database is retried this often while an exit flush still has time.
EXIT_RETRY_SECONDS = 0.1


class DatabaseRecorder:
    def __init__(
        self,
        *,
        background: bool = True,
        flush_seconds: float = 1.0,
        buffer_max: int = 100_000,
        exit_seconds: float = 5.0,
    ) -> None:
        self.background = background
        self.flush_seconds = max(0.01, flush_seconds)
        self.buffer_max = buffer_max
        self.exit_seconds = max(0.0, exit_seconds)
        self._buffer: deque[Record] = deque()
        # An instance attribute on purpose: the hot path calls deque.append directly.
        self.record = self._buffer.append
        self.dropped = 0  # records never written, since start (or fork)
        self._reset_threading()
        self._closed = False
        atexit.register(self._close_at_exit)
        os.register_at_fork(after_in_child=self._after_fork)
        self._start()

    def _reset_threading(self) -> None:
        self._flush_lock = threading.Lock()
        # Held by whoever pops or puts back (writer, guard), never by the hot
        # path: with appends as the only other change, len() only grows under it.
        self._take_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard: threading.Thread | None = None
        self._in_flight = 0
        self._episode = 0
        self._episode_began = 0.0
        self._last_drop = 0.0

    def pending(self) -> int:
        """Records waiting to be written (the bound applied first)."""
        self._trim()
        return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered now, in the calling thread; return how many."""
        written = 0
        with self._flush_lock:
            self._trim()
            while self._buffer:
                batch = self._take(BATCH_SIZE)
                self._in_flight = len(batch)
                try:
                    written += self._write(batch)
                finally:
                    self._in_flight = 0
        # Drained: whatever overflow there was is over.
        self._report_drops(force=not self._buffer)
        return written

    def flush_within(self, seconds: float, *, when: str) -> int:
        """Write everything buffered, giving up after `seconds`; return how many
        records were left unwritten (and log them). A dead database makes this
        wait, never hang: the writing happens in a thread we stop waiting for."""
        deadline = time.monotonic() + seconds
        finished = threading.Event()

        def drain() -> None:
            try:
                while True:
                    try:
                        self.flush()
                        return
                    except Exception:
                        if time.monotonic() + EXIT_RETRY_SECONDS >= deadline:
                            logger.exception("could not write call records %s", when)
                            return
                        time.sleep(EXIT_RETRY_SECONDS)
            finally:
                finished.set()

        try:
            threading.Thread(target=drain, name="cachesite-recorder-exit", daemon=True).start()
        except RuntimeError:
            # Python 3.12+ starts no thread from an atexit hook: write here.
            drain()
        finished.wait(max(0.0, deadline - time.monotonic()))
        left = len(self._buffer) + self._in_flight
        if left:
            logger.error(
                "%d call records were not written %s: the database did not take them"
                " within %.1f s (EXTRACTOR_RECORD_EXIT_SECONDS)",
                left,
                when,
                seconds,
            )
        return left

    def close(self) -> None:
        """Stop the writer and guard threads and write what is left, in the
        calling thread (its connection, its transaction)."""
        if self._stop_threads(time.monotonic() + self.exit_seconds):
            try:
                self.flush()
            except Exception:
                logger.exception("could not write %d call records", len(self._buffer))
                self._count_lost(len(self._buffer))
        else:
            # The writer is stuck in a write: queueing behind it could wait forever.
            left = len(self._buffer) + self._in_flight
            logger.error("%d call records were not written on close: the writer is stuck", left)
            self._count_lost(left)
        self._report_drops(force=True)

    def _close_at_exit(self) -> None:
        """close(), bounded by exit_seconds: a dead database must not hang the exit."""
        deadline = time.monotonic() + self.exit_seconds
        self._stop_threads(deadline)
        left = self.flush_within(max(0.0, deadline - time.monotonic()), when="at exit")
        self._count_lost(left)
        self._report_drops(force=True)

    def _stop_threads(self, deadline: float) -> bool:
        """Stop both threads, waiting until `deadline`; say whether they stopped."""
        atexit.unregister(self._close_at_exit)
        self._closed = True
        self._stopping.set()
        self._wake.set()
        stopped = True
        for thread in (self._thread, self._guard):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
                stopped = stopped and not thread.is_alive()
        return stopped

    def _trim(self) -> None:
        with self._take_lock:
            excess = len(self._buffer) - self.buffer_max
            if excess <= 0:
                return
            popleft = self._buffer.popleft
            for _ in range(excess):
                popleft()  # the oldest go first, as with deque(maxlen=...)
        now = time.monotonic()
        with self._drop_lock:
            self.dropped += excess
            if not self._episode:
                self._episode_began = now
            self._episode += excess
            self._last_drop = now

    def _count_lost(self, count: int) -> None:
        if not count:
            return
        with self._drop_lock:
            self.dropped += count

    def _report_drops(self, *, force: bool = False) -> None:
        with self._drop_lock:
            if not self._episode:
                return
            now = time.monotonic()
            quiet = now - self._last_drop >= EPISODE_QUIET_SECONDS
            long = now - self._episode_began >= EPISODE_REPORT_SECONDS
            if not (force or quiet or long):
                return
            count, seconds, total = self._episode, now - self._episode_began, self.dropped
            self._episode = 0
        logger.warning(
            "the call record buffer was full (%d): dropped the %d oldest call records"
            " over %.1f s (%d since start); the database was away or slower than the"
            " calls (raise EXTRACTOR_RECORD_BUFFER_MAX to hold more)",
            self.buffer_max,
            count,
            seconds,
            total,
        )

    def _take(self, count: int) -> list[Record]:
        with self._take_lock:
            popleft = self._buffer.popleft
            return [popleft() for _ in range(min(count, len(self._buffer)))]

    def _write(self, batch: list[Record]) -> int:
        try:
            write_events(batch)
            return len(batch)
        except (OperationalError, InterfaceError):
            # The database is away: keep the records and let a later flush try again.
            with self._take_lock:
                self._buffer.extendleft(reversed(batch))
            raise
        except DatabaseError:
            # One bad record must not sink its batch: write them one by one.
            logger.exception("a batch of %d call records failed; writing one by one", len(batch))
            written = 0
            for event in batch:
                try:
                    write_events([event])
                    written += 1
                except DatabaseError:
                    # Not the event itself: its repr carries the call's arguments.
                    logger.exception("dropped a call record of %s", _describe(event))
                    self._count_lost(1)
            return written

    def _start(self) -> None:
        # The guard runs even without a background writer: it is what bounds memory.
        self._guard = threading.Thread(
            target=self._guard_loop, name="cachesite-recorder-guard", daemon=True
        )
        self._guard.start()
        if self.background:
            self._thread = threading.Thread(
                target=self._run, name="cachesite-recorder", daemon=True
            )
            self._thread.start()

    def _guard_loop(self) -> None:
        while not self._stopping.wait(GUARD_SECONDS):
            self._trim()
            self._report_drops()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connections.close_all()  # this thread's connections, so the database can go

    def _loop(self) -> None:
        while not self._closed:
            if len(self._buffer) < BATCH_SIZE:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
            if self._closed:
                return
            try:
                close_old_connections()
                self.flush()
            except Exception:
                logger.exception("writing call records failed; will retry")
                self._wake.wait(self.flush_seconds)

    def _after_fork(self) -> None:
        # Records taken before fork() are the parent's to write, and its drops
        # the parent's to count; the threads did not survive fork(): start ours.
        self._buffer.clear()
        self.dropped = 0
        self._reset_threading()
        if not self._closed:
            self._start()


def _describe(record: Record) -> str:
    if isinstance(record, tuple):
        return f"{record[0].name} (hit, key {record[1]})"
    return f"{record.info.name} ({record.outcome}, key {record.key})"
