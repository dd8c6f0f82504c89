"""Buffers call events in memory and writes them to the database in batches.

Recording a hit is one deque.append (tens of nanoseconds, no lock, no check).
A background thread drains the deque: at once while there is a batch's worth
waiting, otherwise every EXTRACTOR_RECORD_FLUSH_SECONDS, and one last time when
the process exits normally. The deque is bounded: if the database is away for
long, the oldest records go first and the loss is logged.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
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


class DatabaseRecorder:
    def __init__(
        self, *, background: bool = True, flush_seconds: float = 1.0, buffer_max: int = 100_000
    ) -> None:
        self.background = background
        self.flush_seconds = max(0.01, flush_seconds)
        self.buffer_max = buffer_max
        self._buffer: deque[Record] = deque(maxlen=buffer_max)
        # An instance attribute on purpose: the hot path calls deque.append directly.
        self.record = self._buffer.append
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)
        os.register_at_fork(after_in_child=self._after_fork)
        if background:
            self._start()

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered now, in the calling thread; return how many."""
        written = 0
        with self._flush_lock:
            if len(self._buffer) >= self.buffer_max:
                logger.warning(
                    "the call record buffer was full (%d); the oldest records were dropped",
                    self.buffer_max,
                )
            while self._buffer:
                written += self._write(self._take(BATCH_SIZE))
        return written

    def close(self) -> None:
        """Stop the writer thread and write what is left (runs at exit)."""
        atexit.unregister(self.close)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            logger.exception("could not write %d call records at exit", len(self._buffer))

    def _take(self, count: int) -> list[Record]:
        batch: list[Record] = []
        popleft = self._buffer.popleft
        try:
            for _ in range(count):
                batch.append(popleft())
        except IndexError:
            pass
        return batch

    def _write(self, batch: list[Record]) -> int:
        try:
            write_events(batch)
            return len(batch)
        except (OperationalError, InterfaceError):
            # The database is away: keep the records and let a later flush try again.
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
            return written

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cachesite-recorder", daemon=True)
        self._thread.start()

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
        # Records taken before fork() are the parent's to write; the writer
        # thread did not survive fork(), so the child starts its own.
        self._buffer.clear()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        if self.background and not self._closed:
            self._start()


def _describe(record: Record) -> str:
    if isinstance(record, tuple):
        return f"{record[0].name} (hit, key {record[1]})"
    return f"{record.info.name} ({record.outcome}, key {record.key})"
