"""Buffers call records in memory and writes them to the database in batches.

Recording a hit is one deque.append (tens of nanoseconds, no lock, no check).
A guard thread drains the deque every GUARD_SECONDS into a tally (tally.py):
exact counts per key and hour, the rows to itemise. A writer thread writes the
tally every EXTRACTOR_RECORD_FLUSH_SECONDS (at once when it holds a batch's
worth of rows), and one last time when the process exits normally or on
SIGTERM/SIGINT (extractor/recording/shutdown.py). A tally the database did not
take is kept and written with the next: a database away costs memory for the
keys hit meanwhile, not counts.

Two bounds, both counted and logged, never silent: the deque is cut back to
EXTRACTOR_RECORD_BUFFER_MAX records if the guard ever falls that far behind
(not by deque(maxlen=...), which discards without telling anyone), and a tally
holds at most that many rows waiting (past it a computed call keeps its counts
but loses its row). Each overflow episode is logged once with its count; the
counts reach the database (DroppedRecords) with the next write.
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
    connections,
)

from extractor.caching.events import Record
from extractor.recording.tally import EVERY_HIT, ItemiseBudget, Tally
from extractor.recording.writer import write_tally

logger = logging.getLogger("extractor.recording")

BATCH_SIZE = 5000
# How often the guard applies the bound: the buffer can overshoot it by what
# the callers append in this time (a few thousand records at the highest rates).
GUARD_SECONDS = 0.05
# An overflow episode is reported once it has been quiet this long...
EPISODE_QUIET_SECONDS = 1.0
# ...or, if it goes on (a database away for long), every this often.
EPISODE_REPORT_SECONDS = 60.0
# The longest wait between two attempts of the writer on a failing database.
MAX_BACKOFF = 30.0
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
        hits_per_second: int = EVERY_HIT,
    ) -> None:
        self.background = background
        self.hits_per_second = hits_per_second
        self._budget = None if hits_per_second < 0 else ItemiseBudget(hits_per_second)
        self.flush_seconds = max(0.01, flush_seconds)
        self.buffer_max = buffer_max
        self.exit_seconds = max(0.0, exit_seconds)
        self._buffer: deque[Record] = deque()
        # An instance attribute on purpose: the hot path calls deque.append directly.
        self.record = self._buffer.append
        self.dropped = 0  # records never written, or written without their row, since start
        self._dropped_saved = 0  # of which the database has been told (DroppedRecords)
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
        # Held while folding into or swapping out the tally.
        self._fold_lock = threading.Lock()
        self._tally = self._new_tally()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard: threading.Thread | None = None
        self._in_flight = 0
        self._episode = 0
        self._episode_began = 0.0
        self._last_drop = 0.0

    def _new_tally(self) -> Tally:
        return Tally(budget=self._budget, max_rows=self.buffer_max)

    def pending(self) -> int:
        """Records waiting to be written."""
        return len(self._buffer) + len(self._tally)

    def flush(self) -> int:
        """Write everything buffered now, in the calling thread; return how many."""
        with self._flush_lock:
            self._fold()
            with self._fold_lock:
                tally, self._tally = self._tally, self._new_tally()
            self._in_flight = len(tally)
            try:
                written = self._write(tally)
            finally:
                self._in_flight = 0
        # Drained: whatever overflow there was is over.
        self._report_drops(force=not self._buffer)
        return written

    def _fold(self) -> None:
        """Move what the deque holds into the tally."""
        with self._fold_lock:
            # What is there now: callers appending meanwhile must not keep us here.
            left = len(self._buffer)
            while left > 0:
                records = self._take(min(left, BATCH_SIZE))
                if not records:
                    break
                left -= len(records)
                try:
                    self._tally.fold(records)
                except Exception:
                    # A record of a shape we cannot fold: never the callers' problem.
                    logger.exception("could not count %d call records", len(records))
                    self._count_lost(len(records))

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
        left = len(self._buffer) + len(self._tally) + self._in_flight
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
                left = len(self._buffer) + len(self._tally)
                logger.exception("could not write %d call records on close", left)
                self._count_lost(left)
        else:
            # The writer is stuck in a write: queueing behind it could wait forever.
            left = len(self._buffer) + len(self._tally) + self._in_flight
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

    def _write(self, tally: Tally) -> int:
        unsaved = self.dropped - self._dropped_saved
        try:
            write_tally(tally, dropped=unsaved)
        except (OperationalError, InterfaceError):
            # The database is away: keep the counts and let a later flush try again.
            with self._fold_lock:
                tally.absorb(self._tally)
                self._tally = tally
            raise
        except DatabaseError:
            # One bad record must not sink its batch: write them one by one.
            logger.exception("a batch of %d call records failed; writing one by one", len(tally))
            return self._write_one_by_one(tally, unsaved)
        self._tally_written(tally, unsaved)
        return len(tally)

    def _tally_written(self, tally: Tally, unsaved: int) -> None:
        with self._drop_lock:
            self._dropped_saved += unsaved
            self.dropped += tally.dropped
            self._dropped_saved += tally.dropped
        if tally.dropped:
            logger.warning(
                "%d computed call records were counted without their rows: more than %d"
                " rows were waiting (EXTRACTOR_RECORD_BUFFER_MAX)",
                tally.dropped,
                self.buffer_max,
            )

    def _write_one_by_one(self, tally: Tally, unsaved: int) -> int:
        # In the order write_tally keeps: per segment its computed calls, then its hits.
        pieces: list[tuple[Tally, str]] = []
        for segment in tally.segments:
            for event in segment.computed:
                one = self._new_tally()
                one.fold([event])
                pieces.append((one, f"a call record of {_describe(event)}"))
            if segment.hits:
                hits = self._new_tally()
                hits.segments[0].hits = segment.hits
                hits.records = sum(k.latencies.count for k in segment.hits.values())
                hits.rows = sum(len(k.itemised) for k in segment.hits.values())
                pieces.append((hits, f"the call records of {hits.records} hits"))
        # The counts of computed calls that lost their rows, and the drops to save.
        counts = self._new_tally()
        counts.counted_only = tally.counted_only
        counts.dropped = tally.dropped
        pieces.append((counts, f"the counts of {tally.dropped} call records"))
        written = 0
        for index, (piece, what) in enumerate(pieces):
            last = index == len(pieces) - 1
            try:
                write_tally(piece, dropped=unsaved if last else 0)
            except (OperationalError, InterfaceError):
                # The database went away meanwhile: keep what is not written yet.
                self._keep(pieces[index:])
                raise
            except DatabaseError:
                # Not the records themselves: their repr carries the call's arguments.
                logger.exception("dropped %s", what)
                self._count_lost(piece.records or piece.dropped)
                continue
            written += piece.records
            if last:
                self._tally_written(piece, unsaved)
        return written

    def _keep(self, pieces: list[tuple[Tally, str]]) -> None:
        """Put unwritten pieces back ahead of what was folded since."""
        first = pieces[0][0]
        for piece, _what in pieces[1:]:
            first.absorb(piece)
        with self._fold_lock:
            first.absorb(self._tally)
            self._tally = first

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
            self._fold()
            # Only what callers appended faster than the fold could take.
            self._trim()
            self._report_drops()
            if self._tally.rows >= BATCH_SIZE:
                self._wake.set()  # a batch's worth of rows: the writer need not wait

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connections.close_all()  # this thread's connections, so the database can go

    def _loop(self) -> None:
        failures = 0
        while not self._closed:
            if self._tally.rows < BATCH_SIZE:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
            if self._closed:
                return
            try:
                # The writer keeps its connection between writes (CONN_MAX_AGE is
                # for request threads): a connect per second costs more than the
                # write. One that broke is dropped below and made again next time.
                self.flush()
                failures = 0
            except Exception:
                failures += 1
                logger.exception("writing call records failed (%d in a row); will retry", failures)
                connections.close_all()
                # Backing off: the guard's "a batch is waiting" wake-up must not turn
                # an outage into a retry loop. Only stopping cuts the wait short.
                self._wake.clear()
                self._stopping.wait(min(self.flush_seconds * 2 ** min(failures, 10), MAX_BACKOFF))

    def _after_fork(self) -> None:
        # Records taken before fork() are the parent's to write, and its drops
        # the parent's to count; the threads did not survive fork(): start ours.
        self._buffer.clear()
        self.dropped = self._dropped_saved = 0
        self._reset_threading()
        if not self._closed:
            self._start()


def _describe(record: Record) -> str:
    if isinstance(record, tuple):
        return f"{record[0].name} (hit, key {record[1]})"
    return f"{record.info.name} ({record.outcome}, key {record.key})"
