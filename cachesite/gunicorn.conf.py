"""gunicorn's settings for `make serve`, read from the environment.

    gunicorn --config cachesite/gunicorn.conf.py cachesite.wsgi

WEB_CONCURRENCY worker processes, each with GUNICORN_THREADS threads, on GUNICORN_BIND.
Anything else gunicorn knows can be passed in GUNICORN_CMD_ARGS (gunicorn reads it).
"""

from __future__ import annotations

import os
from typing import Any

from cachesite.env import env_int, env_str, refuse_development_secret_key

bind = [env_str("GUNICORN_BIND", "127.0.0.1:8000")]
workers = env_int("WEB_CONCURRENCY", 2)
threads = env_int("GUNICORN_THREADS", 4)
# Threads, so a request waiting tens of seconds on the LLM holds one thread, never the
# worker's heartbeat (a sync worker would be killed at `timeout` mid-call).
worker_class = "gthread"
timeout = env_int("GUNICORN_TIMEOUT", 30)
# On SIGTERM a worker stops taking requests and finishes those it has, for this long.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Logs to stderr, like the app's own; the access log is opt-in (GUNICORN_CMD_ARGS=
# "--access-logfile -"), since query strings carry what people search for.
errorlog = "-"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn): two servers
# on a host would share it. Its signals do the same (HUP reloads, TTIN/TTOU add or remove
# a worker, TERM stops gracefully).
control_socket_disable = True
# The app (settings, recorder, its threads and atexit hook) is loaded in each worker
# after the fork, never in the master.
preload_app = False


def on_starting(server: Any) -> None:
    """Refuse in the master, once and plainly, rather than in every worker as it boots."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cachesite.settings")
    from django.conf import settings

    refuse_development_secret_key(debug=settings.DEBUG, secret_key=settings.SECRET_KEY)


def worker_exit(server: Any, worker: Any) -> None:
    """Write the worker's buffered call records before it goes.

    The recorder's SIGTERM handler (chained before gunicorn's) and its atexit hook
    already do; this is gunicorn's own exit path for every way a worker stops (SIGTERM,
    SIGQUIT, max_requests, a reload), run while the worker is still whole, and bounded
    by EXTRACTOR_RECORD_EXIT_SECONDS. The atexit hook then finds nothing left.
    """
    from django.apps import apps

    if not apps.ready:  # the worker failed to boot: nothing was recorded
        return
    from extractor.caching.events import get_recorder
    from extractor.recording import DatabaseRecorder

    recorder = get_recorder()
    if isinstance(recorder, DatabaseRecorder):
        recorder.flush_within(recorder.exit_seconds, when=f"at worker exit (pid {worker.pid})")
