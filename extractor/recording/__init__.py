"""The bridge from the caching library to the database."""

from __future__ import annotations

from django.conf import settings

from extractor.caching.events import get_recorder, set_recorder
from extractor.recording.buffer import DatabaseRecorder
from extractor.recording.shutdown import install_signal_flush

__all__ = ["DatabaseRecorder", "flush", "install_recorder"]


def install_recorder() -> DatabaseRecorder:
    """Install a DatabaseRecorder built from settings (called by the app config)."""
    current = get_recorder()
    if isinstance(current, DatabaseRecorder):
        current.close()  # writes what it holds and stops its writer thread
    recorder = DatabaseRecorder(
        background=settings.EXTRACTOR_RECORD_IN_BACKGROUND,
        flush_seconds=settings.EXTRACTOR_RECORD_FLUSH_SECONDS or 1.0,
        buffer_max=settings.EXTRACTOR_RECORD_BUFFER_MAX,
        exit_seconds=settings.EXTRACTOR_RECORD_EXIT_SECONDS or 0.0,
        hits_per_second=settings.EXTRACTOR_ITEMISED_HITS_PER_SECOND,
    )
    set_recorder(recorder)
    install_signal_flush(enabled=settings.EXTRACTOR_RECORD_SIGNAL_FLUSH)
    return recorder


def flush() -> None:
    """Write every buffered call record now; pages call this before reading them."""
    get_recorder().flush()
