"""Buffers call events in memory and writes them to the database in batches.

A hit appends one object to a deque (well under a microsecond); a background
thread writes whatever has gathered every EXTRACTOR_RECORD_FLUSH_SECONDS, or
sooner when a batch fills up, and once more when the process exits normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections

from extractor.caching.events import CallEvent
from extractor.recording.writer import write_events

logger = logging.getLogger("extractor.recording")

BATCH_SIZE = 2000


class DatabaseRecorder:
    def __init__(
        self, *, background: bool = True, flush_seconds: float = 1.0, buffer_max: int = 100_000
    ) -> None:
        self.background = background
        self.flush_seconds = max(0.01, flush_seconds)
        self.buffer_max = buffer_max
        self.dropped = 0
        self._buffer: deque[CallEvent] = deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)
        os.register_at_fork(after_in_child=self._after_fork)

    def record(self, event: CallEvent) -> None:
        buffer = self._buffer
        if len(buffer) >= self.buffer_max:
            # Never block or grow without bound when the database is gone.
            self.dropped += 1
            return
        buffer.append(event)
        if self._thread is None and self.background:
            self._start()
        elif len(buffer) >= BATCH_SIZE:
            self._wake.set()

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered now, in the calling thread; return how many."""
        written = 0
        with self._flush_lock:
            while self._buffer:
                batch = self._take(BATCH_SIZE)
                written += self._write(batch)
        return written

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            logger.exception("could not write %d call records at exit", len(self._buffer))
        if self.dropped:
            logger.warning("%d call records were dropped: the buffer was full", self.dropped)

    def _take(self, count: int) -> list[CallEvent]:
        batch: list[CallEvent] = []
        popleft = self._buffer.popleft
        try:
            for _ in range(count):
                batch.append(popleft())
        except IndexError:
            pass
        return batch

    def _write(self, batch: list[CallEvent]) -> int:
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
                    logger.exception("dropped the call record of %s", event.info.name)
            return written

    def _start(self) -> None:
        with self._flush_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="cachesite-recorder", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closed:
                return
            try:
                close_old_connections()
                self.flush()
            except Exception:
                logger.exception("writing call records failed; will retry")

    def _after_fork(self) -> None:
        # The writer thread does not survive fork(); the child starts its own.
        self._thread = None
        self._buffer.clear()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
