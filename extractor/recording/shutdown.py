"""Write the buffered call records when the process is told to stop.

SIGTERM's default action ends the process without running atexit, so without
this a graceful restart (gunicorn sends SIGTERM to each worker) loses every
buffered record. The handler writes the buffer, within the recorder's
exit_seconds, then does what was there before: a Python handler (gunicorn's
graceful shutdown, Python's KeyboardInterrupt for SIGINT) is called, an
ignored signal stays ignored, and the default action is restored and the
signal raised again, so the exit status still says "killed by SIGTERM".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from extractor.caching.events import get_recorder
from extractor.recording.buffer import DatabaseRecorder

logger = logging.getLogger("extractor.recording")

SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

# What each signal did before ours, for as long as ours is installed.
_previous: dict[int, Handler] = {}


def install_signal_flush(*, enabled: bool = True) -> None:
    """Flush the recorder on SIGTERM and SIGINT (or, disabled, stop doing so).

    Signal handlers belong to the main thread: from any other thread, and for a
    signal whose handler was set outside Python (it could not be chained), this
    leaves things as they are. Installing twice changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        ours = current is _flush_then_continue
        if enabled and not ours:
            if current is None:
                logger.info(
                    "not flushing call records on %s: its handler is not Python's",
                    signal.Signals(signum).name,
                )
                continue
            _previous[signum] = current
            signal.signal(signum, _flush_then_continue)
        elif not enabled and ours:
            signal.signal(signum, _previous.pop(signum, signal.SIG_DFL))


def _flush_then_continue(signum: int, frame: FrameType | None) -> None:
    recorder = get_recorder()
    if isinstance(recorder, DatabaseRecorder):
        name = signal.Signals(signum).name
        recorder.flush_within(recorder.exit_seconds, when=f"on {name}")
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        # The default action (end the process) is the kernel's: hand it back
        # and send the signal again, so the exit status is the signal's.
        _previous.pop(signum, None)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
