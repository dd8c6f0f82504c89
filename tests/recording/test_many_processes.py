"""One truth across processes: 4 processes x 4 threads on one backend and one database.

Single-flight across processes is cut short here (a 1 ms lease: a lock that
expires at once, as after a holder died), so the processes compute the same
keys at the same time and each stores and records its value. Their records must converge:
one entry row per key, no "evicted" miss (nothing was), every hit counted on
the live row. The children run the real app (gunicorn's setup) against the
fake provider served by this process, on a database made for the test: a
SQLite file, or a PostgreSQL database when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from tests.conftest import TEST_API_KEY

# Runs the library in other processes: mutmut's mutated copy cannot be imported there,
# so `make mutate` leaves these tests out (README "Mutation testing").
pytestmark = pytest.mark.processes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
THREADS = 4
CALLS_PER_THREAD = 60
KEYS = 20

CHILD = textwrap.dedent(
    f"""
    import random, sys, threading
    import django

    django.setup()
    from extractor.caching import capture_calls
    from extractor.extraction import extract

    texts = [f"Person {{i}} is {{20 + i}} years old" for i in range({KEYS})]
    hits = []

    def work(seed):
        pick = random.Random(seed)
        with capture_calls() as records:
            for _ in range({CALLS_PER_THREAD}):
                extract(pick.choice(texts), "UserDetail", "gpt-4o-mini")
        hits.append(sum(1 for record in records if isinstance(record, tuple)))

    threads = [
        threading.Thread(target=work, args=(int(sys.argv[1]) * 100 + n,))
        for n in range({THREADS})
    ]
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("hits", sum(hits), flush=True)
    """
)


def _environment(
    tmp_path: Path, database_url: str, cache_url: str, base_url: str
) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXTRACTOR_", "DATABASE_", "OPENAI_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="cachesite.settings",
        CACHESITE_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=database_url,
        EXTRACTOR_CACHE_URL=cache_url,
        EXTRACTOR_RECORD_IN_BACKGROUND="1",
        EXTRACTOR_RECORD_FLUSH_SECONDS="0.2",
        EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS="0.001",
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_BASE_URL=base_url,
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


Query = Callable[[str], list[tuple[Any, ...]]]


@pytest.fixture
def shared_database(tmp_path: Path) -> Iterator[tuple[str, Query]]:
    """(DATABASE_URL, run a query) for a database of its own, on the suite's vendor."""
    if connection.vendor != "postgresql":
        path = tmp_path / "shared.sqlite3"

        def query_sqlite(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as database:
                return database.execute(sql).fetchall()

        yield f"sqlite:///{path}", query_sqlite
        return
    server = connection.settings_dict
    name = f"cachesite_multi_{uuid.uuid4().hex[:8]}"
    options = {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **options) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def query_postgres(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dbname=name, **options) as database:
            return database.execute(sql).fetchall()  # type: ignore[arg-type]

    url = f"postgres://{options['user']}@{options['host']}:{options['port']}/{name}"
    if options["password"]:
        url = url.replace("@", f":{options['password']}@", 1)
    yield url, query_postgres
    with psycopg.connect(dbname="postgres", autocommit=True, **options) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _hammer(env: dict[str, str]) -> int:
    """Run the children together; return the hits they report."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(number)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(PROCESSES)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate()[1]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    hits = 0
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "Traceback" not in err, err
        hits += int(out.split("hits", 1)[1])
    return hits


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_processes_computing_the_same_keys_converge_on_one_row_per_key(
    backend, tmp_path, fake_llm, shared_database, request
):
    database_url, query = shared_database
    cache_url = (
        f"disk://{tmp_path / 'cache'}"
        if backend == "disk"
        else request.getfixturevalue("redis_cache_url")
    )
    # Slow enough answers that the processes' first misses on a key overlap.
    fake_llm.stall(0.05)

    hits = _hammer(_environment(tmp_path, database_url, cache_url, fake_llm.base_url))

    calls = PROCESSES * THREADS * CALLS_PER_THREAD
    misses = fake_llm.count
    assert hits == calls - misses
    assert misses > KEYS  # some keys were computed by several processes
    assert query("SELECT status, COUNT(*) FROM extractor_entry GROUP BY status") == [("live", KEYS)]
    assert query(
        "SELECT miss_reason, COUNT(*) FROM extractor_call WHERE outcome = 'miss'"
        " GROUP BY miss_reason"
    ) == [("new_input", misses)]
    assert query("SELECT SUM(hit_count) FROM extractor_entry WHERE status = 'live'") == [(hits,)]
    # The counters, added to by every process at once, hold every call exactly.
    assert query(
        "SELECT outcome, SUM(calls) FROM extractor_callrollup WHERE span = 'hour'"
        " GROUP BY outcome ORDER BY outcome"
    ) == [("hit", hits), ("miss", misses)]
    assert query("SELECT SUM(calls) FROM extractor_callrollup WHERE span = 'day'") == [(calls,)]
