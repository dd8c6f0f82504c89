"""Nothing is lost when a process stops: on a normal exit, on SIGTERM, on SIGINT.

Each test runs a real process that records calls against the fake provider
with a writer that waits 60 s between batches, so every record is still in the
buffer when the process is told to stop. The database is a SQLite file, or a
fresh PostgreSQL database when the suite runs on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import TEST_API_KEY

# Runs the library in other processes: mutmut's mutated copy cannot be imported there,
# so `make mutate` leaves these tests out (README "Mutation testing").
pytestmark = pytest.mark.processes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CALLS = 51  # one miss, then hits

RECORD_CALLS = f"""
import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)

from extractor.caching.events import get_recorder
from extractor.extraction import extract
from extractor.models import Call

for _ in range({CALLS}):
    extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
"""
# The writer thread waits 60 s between batches: these are all still buffered.
# The test sends its signal once it has read this line.
READY = 'print("pending", get_recorder().pending(), flush=True)\n'

RECORD_CALLS += READY
SCRIPT = RECORD_CALLS

# Ready only inside the try: a SIGINT that came before it would escape the handler.
WAIT_FOR_SIGNAL = RECORD_CALLS.removesuffix(READY) + textwrap.dedent(
    """
    import signal
    try:
        print("pending", get_recorder().pending(), flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("written when interrupted", Call.objects.count(), flush=True)
    """
)

# An app with its own SIGTERM handler, set before Django starts (as gunicorn's
# workers do): it must still run, and find the records written.
OWN_HANDLER = (
    textwrap.dedent(
        """
    import signal

    stopping = []

    def graceful_stop(signum, frame):
        from extractor.models import Call
        print("own handler ran with", Call.objects.count(), "written", flush=True)
        stopping.append(signum)

    signal.signal(signal.SIGTERM, graceful_stop)
    """
    )
    + RECORD_CALLS
    + textwrap.dedent(
        """
    while not stopping:
        signal.pause()
    print("stopped gracefully", flush=True)
    """
    )
)


@dataclass
class Database:
    """Where the process under test writes, and how the test reads it back."""

    env: dict[str, str]
    sqlite_path: Path | None = None
    postgres_url: str = ""
    _cleanups: list[Any] = field(default_factory=list)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as connection:
                return connection.execute(sql).fetchall()
        with psycopg.connect(self.postgres_url) as connection:
            return connection.execute(sql).fetchall()

    def outcomes(self) -> dict[str, int]:
        rows = self.rows("SELECT outcome, COUNT(*) FROM extractor_call GROUP BY outcome")
        return {outcome: count for outcome, count in rows}

    def entries(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT hit_count, status FROM extractor_entry")

    def locked(self) -> AbstractContextManager[None]:
        """Hold the call table so that no write to it can finish."""
        if self.sqlite_path is not None:
            return _sqlite_write_lock(self.sqlite_path)
        return _postgres_table_lock(self.postgres_url)


@contextmanager
def _sqlite_write_lock(path: Path) -> Iterator[None]:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


@contextmanager
def _postgres_table_lock(url: str) -> Iterator[None]:
    with psycopg.connect(url) as connection:
        connection.execute("LOCK TABLE extractor_call IN ACCESS EXCLUSIVE MODE")
        yield
        connection.rollback()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield Database(env={}, sqlite_path=tmp_path / "data" / "cachesite.sqlite3")
        return
    # A database of its own: the process under test migrates it from empty.
    name = f"test_exit_{uuid.uuid4().hex[:12]}"
    server = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(env={"DATABASE_URL": f"{server}/{name}"}, postgres_url=f"{server}/{name}")
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _environment(data_dir: Path, base_url: str, database: Database) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXTRACTOR_", "DATABASE_", "OPENAI_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="cachesite.settings",
        CACHESITE_DATA_DIR=str(data_dir),
        EXTRACTOR_RECORD_IN_BACKGROUND="1",
        EXTRACTOR_RECORD_FLUSH_SECONDS="60",
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_BASE_URL=base_url,
        PYTHONPATH=str(PROJECT_ROOT),
    )
    env.update(database.env)
    return env


def _start(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # after the last call
    if line != f"pending {CALLS}\n":
        process.kill()
        pytest.fail(f"the process did not record its calls: {line!r}\n{process.stderr.read()}")
    return process


def _stop(process: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def _every_call_is_written(database: Database) -> None:
    assert database.outcomes() == {"miss": 1, "hit": CALLS - 1}
    assert database.entries() == [(CALLS - 1, "live")]


def test_a_process_that_exits_normally_writes_every_buffered_call(tmp_path, fake_llm, database):
    finished = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=PROJECT_ROOT,
        env=_environment(tmp_path / "data", fake_llm.base_url, database),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert f"pending {CALLS}" in finished.stdout  # nothing was written before exit
    assert fake_llm.count == 1
    _every_call_is_written(database)


def test_sigterm_writes_every_buffered_call_and_still_ends_the_process(
    tmp_path, fake_llm, database
):
    process = _start(WAIT_FOR_SIGNAL, _environment(tmp_path / "data", fake_llm.base_url, database))

    returncode, _stdout, stderr = _stop(process, signal.SIGTERM)

    assert returncode == -signal.SIGTERM, stderr  # killed by the signal, as without us
    _every_call_is_written(database)


def test_sigint_writes_every_buffered_call_before_the_program_sees_keyboard_interrupt(
    tmp_path, fake_llm, database
):
    process = _start(WAIT_FOR_SIGNAL, _environment(tmp_path / "data", fake_llm.base_url, database))

    returncode, stdout, stderr = _stop(process, signal.SIGINT)

    assert returncode == 0, stderr
    assert f"written when interrupted {CALLS}" in stdout
    _every_call_is_written(database)


def test_an_apps_own_sigterm_handler_still_runs_after_the_records_are_written(
    tmp_path, fake_llm, database
):
    process = _start(OWN_HANDLER, _environment(tmp_path / "data", fake_llm.base_url, database))

    returncode, stdout, stderr = _stop(process, signal.SIGTERM)

    assert returncode == 0, stderr  # the app's handler decided: a graceful stop
    assert f"own handler ran with {CALLS} written" in stdout
    assert "stopped gracefully" in stdout
    _every_call_is_written(database)


def test_a_database_that_takes_nothing_delays_sigterm_only_the_exit_bound_and_says_what_was_lost(
    tmp_path, fake_llm, database
):
    env = _environment(tmp_path / "data", fake_llm.base_url, database)
    env["EXTRACTOR_RECORD_EXIT_SECONDS"] = "1"
    process = _start(WAIT_FOR_SIGNAL, env)

    with database.locked():
        started = time.monotonic()
        returncode, _stdout, stderr = _stop(process, signal.SIGTERM)
        elapsed = time.monotonic() - started

    assert returncode == -signal.SIGTERM, stderr
    assert elapsed < 10  # SQLite alone would wait 20 s for its lock, PostgreSQL forever
    assert f"{CALLS} call records were not written on SIGTERM" in stderr


def test_sigterm_leaves_the_default_alone_when_the_app_opts_out(tmp_path, fake_llm, database):
    env = _environment(tmp_path / "data", fake_llm.base_url, database)
    env["EXTRACTOR_RECORD_SIGNAL_FLUSH"] = "0"
    process = _start(WAIT_FOR_SIGNAL, env)

    returncode, _stdout, stderr = _stop(process, signal.SIGTERM)

    assert returncode == -signal.SIGTERM, stderr
    assert database.outcomes() == {}  # the default action: no atexit, nothing written
