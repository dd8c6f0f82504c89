"""Time a 1,000,000-entry invalidation run as a background job by a real `db_worker`.

Run from the project root:

    .venv/bin/python benchmarks/invalidate_job.py                       # SQLite + disk://
    .venv/bin/python benchmarks/invalidate_job.py --database postgres --backend redis
    .venv/bin/python benchmarks/invalidate_job.py --count 20000         # a smoke run

Setup (not timed)
    A temporary data directory; the database is a fresh SQLite file in it, or on
    PostgreSQL a `cachesite_bench_job_<random>` database of its own on the
    --postgres-url server (dropped at the end). Migrations build the tables; N
    live Entry rows of one function and one LLM model go in with one executemany
    (SQLite) or one COPY (PostgreSQL), plus one entry of another model that the
    invalidation does not touch. Their values go to the backend: one diskcache
    transaction, or Redis pipelines under a prefix of this run's own (cleared at
    the end). A staff user is logged in to Django's test Client (over https, as
    production serves it, with DEBUG off). Then `manage.py db_worker` starts as
    a subprocess with the same environment (DATABASE_URL, CACHESITE_DATA_DIR,
    EXTRACTOR_CACHE_URL; the database task backend) and the clock starts once it
    says it is running.

What is timed
    The confirming POST /invalidate/ (action "model"): it records the
    invalidation and queues its job, so it should return at once. Then the
    invalidation page's htmx fragment is asked every 0.5 s until the job is done,
    each poll's latency recorded; the polls also tell when marking ended
    (`marked_at` set: the job marks MARK_CHUNK rows a transaction, `matched`
    growing) and so how long the removal from the backend took and its rate.
    Meanwhile another connection makes the recorder's kind of small write every
    0.5 s (one UPDATE of the other entry's hit count, committed) and times it:
    its maximum says whether the job starves other writers (SQLite has one
    write lock; the chunked marking is meant to release it every fraction of a
    second).

Checked afterwards (printed; nothing is asserted on time): the invalidation is
done with matched == removed == N, no row is left INVALIDATING, every row of the
model is INVALIDATED, the other entry is live with every probe write counted, a
sample of 1,000 keys is gone from the backend and the backend holds no value of
the run. The exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.setup import redis_url  # noqa: E402

if TYPE_CHECKING:
    from extractor.caching.backends import CacheBackend

FUNCTION = "extractor.extraction:extract_UserDetail"  # importable in the worker
MODEL = "bench-model"  # the invalidation's target
OTHER_MODEL = "bench-other"  # the probe writes' entry, out of scope
POLL_SECONDS = 0.5
PROBE_SECONDS = 0.5
SAMPLE = 1000
REDIS_BATCH = 5000
COPY_COLUMNS = (
    "key, namespace, function, schema_version_id, code_fingerprint, version, "
    "input_fingerprint, arguments, input_preview, output, llm_provider, llm_model, "
    "prompt_tokens, completion_tokens, cached_prompt_tokens, latency_ms, created_at, "
    "hit_count, status"
)
VALUE = '{"schema":"bench","output":{"name":"Jason","age":25}}'  # never read, only deleted


class BenchmarkError(RuntimeError):
    pass


# -- the database and the environment ----------------------------------------------


@dataclass
class Database:
    kind: str  # sqlite or postgres
    url: str
    admin_url: str = ""  # PostgreSQL: where CREATE/DROP DATABASE run
    name: str = ""
    path: Path | None = None  # SQLite: the file

    @classmethod
    def create(cls, kind: str, postgres_url: str, data_dir: Path) -> Database:
        if kind == "sqlite":
            path = data_dir / "invalidate-job.sqlite3"
            return cls(kind, f"sqlite:///{path}", path=path)
        import psycopg

        name = f"cachesite_bench_job_{secrets.token_hex(4)}"
        parts = urlsplit(postgres_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return cls(kind, urlunsplit(parts._replace(path=f"/{name}")), admin, name)

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def configure_environment(database: Database, data_dir: Path, cache_url: str) -> None:
    """What both this process and the worker run with (the worker inherits it)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "cachesite.settings"
    os.environ["CACHESITE_DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = database.url
    os.environ["EXTRACTOR_CACHE_URL"] = cache_url
    os.environ.pop("TASKS_BACKEND", None)  # the database backend: a real worker runs the job
    os.environ["EXTRACTOR_RECORD_IN_BACKGROUND"] = "0"  # no decorated calls are made here
    os.environ["DJANGO_DEBUG"] = "0"  # as production: no query log, https only
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # DEBUG off serves hashed static names from a manifest, as `make serve` does.
    call_command("collectstatic", interactive=False, verbosity=0)


# -- the load ----------------------------------------------------------------------


def make_keys(count: int, token: str) -> list[str]:
    return [hashlib.sha256(f"{token}:{number}".encode()).hexdigest() for number in range(count)]


def insert_entries(database: Database, keys: list[str], other_key: str) -> int:
    """N live entries of MODEL and one of OTHER_MODEL, in bulk; returns the other's id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from extractor.models import Entry, SchemaVersion

    version = SchemaVersion.objects.create(
        name="extractor.schemas.UserDetail", number=1, fingerprint="b" * 64, json_schema={}
    )
    now = timezone.now()

    def row(key: str, model: str, created: object) -> tuple[object, ...]:
        arguments = '{"text": "bench"}'
        output = '{"name": "Jason", "age": 25}'
        return (
            *(key, "", FUNCTION, version.pk, "code", "", key, arguments, "bench", output),
            *("openai", model, 120, 30, 0, 850.0, created, 0, "live"),
        )

    if database.kind == "sqlite":
        created = connection.ops.adapt_datetimefield_value(now)
        placeholders = ", ".join("?" * 19)
        with transaction.atomic():
            connection.ensure_connection()
            raw = connection.connection
            assert isinstance(raw, sqlite3.Connection)
            raw.executemany(
                f"INSERT INTO extractor_entry ({COPY_COLUMNS}) VALUES ({placeholders})",
                (row(key, MODEL, created) for key in keys),
            )
            raw.execute(
                f"INSERT INTO extractor_entry ({COPY_COLUMNS}) VALUES ({placeholders})",
                row(other_key, OTHER_MODEL, created),
            )
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            postgres = cursor.cursor  # psycopg 3's own, for COPY
            with postgres.copy(f"COPY extractor_entry ({COPY_COLUMNS}) FROM STDIN") as copy:
                for key in keys:
                    copy.write_row(row(key, MODEL, now))
                copy.write_row(row(other_key, OTHER_MODEL, now))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE extractor_entry")
    return Entry.objects.get(key=other_key).pk


def write_values(backend: CacheBackend, keys: list[str]) -> None:
    from extractor.caching import DiskBackend, RedisBackend

    if isinstance(backend, DiskBackend):
        cache = backend.cache
        with cache.transact():  # one commit, not a million
            for key in keys:
                cache.set(key, VALUE)
    elif isinstance(backend, RedisBackend):
        for start in range(0, len(keys), REDIS_BATCH):
            pipeline = backend.client.pipeline(transaction=False)
            for key in keys[start : start + REDIS_BATCH]:
                pipeline.set(backend.prefix + key, VALUE)
            pipeline.execute()
    else:
        raise BenchmarkError(f"not a disk or Redis backend: {backend.label}")


# -- the worker --------------------------------------------------------------------


@contextlib.contextmanager
def running_worker(log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`manage.py db_worker` with this process's environment, until it says it runs."""
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-reload"),
                *("--no-startup-delay", "--verbosity", "1"),
            ],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"Starting worker" not in log_path.read_bytes():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkError(f"the worker did not start:\n{tail(log_path)}")
                time.sleep(0.1)
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- the other writer --------------------------------------------------------------


@dataclass
class Probe:
    """A writer beside the job: one committed UPDATE every PROBE_SECONDS, timed."""

    database: Database
    entry_id: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        sql = "UPDATE extractor_entry SET hit_count = hit_count + 1 WHERE id = "
        if self.database.kind == "sqlite":
            assert self.database.path is not None
            # As Django opens it: IMMEDIATE transactions, a 20 s busy timeout.
            lite = sqlite3.connect(self.database.path, timeout=20, isolation_level=None)
            with contextlib.closing(lite):
                self._loop(lambda: self._sqlite_write(lite, sql + "?"))
        else:
            import psycopg

            with psycopg.connect(self.database.url, autocommit=True) as connection:
                self._loop(lambda: connection.execute((sql + "%s").encode(), (self.entry_id,)))

    def _sqlite_write(self, lite: sqlite3.Connection, sql: str) -> None:
        lite.execute("BEGIN IMMEDIATE")
        lite.execute(sql, (self.entry_id,))
        lite.execute("COMMIT")

    def _loop(self, write: Callable[[], object]) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                write()
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # a starved writer: counted and shown, not fatal
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(PROBE_SECONDS)


# -- the run -----------------------------------------------------------------------


@dataclass
class Timeline:
    post_ms: float = 0.0
    post_status: int = 0
    polls_ms: list[float] = field(default_factory=list)
    poll_errors: int = 0
    taken_seconds: float | None = None  # first poll that saw it running
    marked_seconds: float | None = None  # first poll that saw marked_at
    done_seconds: float = 0.0  # first poll that saw it done or failed
    matched_seen: list[int] = field(default_factory=list)  # while marking


def follow(client: object, pk: int, started: float, worker: subprocess.Popen[bytes]) -> Timeline:
    """Poll the page's fragment until the job ends; note when each phase was seen over."""
    from django.test import Client

    from extractor.models import Invalidation

    assert isinstance(client, Client)
    timeline = Timeline()
    url = f"/invalidations/{pk}/"
    last_line = ""
    while True:
        time.sleep(POLL_SECONDS)
        asked = time.perf_counter()
        response = client.get(url, headers={"HX-Request": "true"}, secure=True)
        timeline.polls_ms.append((time.perf_counter() - asked) * 1000)
        timeline.poll_errors += response.status_code != 200
        elapsed = time.perf_counter() - started
        invalidation = Invalidation.objects.get(pk=pk)
        if timeline.taken_seconds is None and invalidation.status != Invalidation.Status.QUEUED:
            timeline.taken_seconds = elapsed
        if timeline.marked_seconds is None and invalidation.marked_at is not None:
            timeline.marked_seconds = elapsed
        if timeline.marked_seconds is None:
            timeline.matched_seen.append(invalidation.matched)
        line = (
            f"{invalidation.status} matched {invalidation.matched:,} "
            f"removed {invalidation.removed:,}"
        )
        if line != last_line and (len(timeline.polls_ms) % 10 == 1 or "running" not in line):
            print(
                f"    {elapsed:7.1f} s  {line}  (poll {timeline.polls_ms[-1]:.0f} ms)", flush=True
            )
            last_line = line
        if invalidation.status in (Invalidation.Status.DONE, Invalidation.Status.FAILED):
            timeline.done_seconds = elapsed
            print(f"    {elapsed:7.1f} s  {line}", flush=True)
            return timeline
        if worker.poll() is not None:
            raise BenchmarkError(f"the worker exited ({worker.returncode}) mid-job")


def keys_present(backend: CacheBackend, keys: list[str]) -> int:
    from extractor.caching import RedisBackend

    if isinstance(backend, RedisBackend):
        return int(backend.client.exists(*[backend.prefix + key for key in keys]))  # type: ignore[arg-type]
    return sum(backend.get(key) is not None for key in keys)


def values_left(backend: CacheBackend) -> int:
    from extractor.caching import DiskBackend

    if isinstance(backend, DiskBackend):
        return len(backend.cache)  # diskcache keeps the count: no scan
    return sum(1 for _key in backend.scan_keys())  # this run's prefix only


def check(
    *,
    count: int,
    pk: int,
    other_id: int,
    probe: Probe,
    backend: CacheBackend,
    keys: list[str],
) -> list[str]:
    from extractor.models import Entry, Invalidation

    problems: list[str] = []
    invalidation = Invalidation.objects.get(pk=pk)
    print(
        f"  status {invalidation.status}, matched {invalidation.matched:,}, "
        f"removed {invalidation.removed:,} (of {count:,})"
    )
    if invalidation.status != Invalidation.Status.DONE:
        problems.append(f"status {invalidation.status}: {invalidation.error}")
    if (invalidation.matched, invalidation.removed) != (count, count):
        problems.append(f"matched {invalidation.matched:,}, removed {invalidation.removed:,}")
    invalidating = Entry.objects.filter(status=Entry.Status.INVALIDATING).count()
    invalidated = Entry.objects.filter(llm_model=MODEL, status=Entry.Status.INVALIDATED).count()
    print(f"  rows: {invalidating:,} INVALIDATING, {invalidated:,} of {count:,} INVALIDATED")
    if invalidating:
        problems.append(f"{invalidating:,} rows left INVALIDATING")
    if invalidated != count:
        problems.append(f"{invalidated:,} rows INVALIDATED, not {count:,}")
    other = Entry.objects.get(pk=other_id)
    writes = len(probe.latencies_ms)
    print(f"  other entry: {other.status}, hit count {other.hit_count} for {writes} probe writes")
    if other.status != Entry.Status.LIVE or other.hit_count != writes:
        problems.append(f"the other entry is {other.status} with {other.hit_count} of {writes}")
    sample = random.sample(keys, min(SAMPLE, len(keys)))
    present = keys_present(backend, sample)
    left = values_left(backend)
    print(f"  backend: {present} of {len(sample):,} sampled keys present, {left:,} values left")
    if present or left:
        problems.append(f"{present} sampled keys and {left:,} values left in the backend")
    if probe.errors:
        problems.append(f"{len(probe.errors)} probe writes failed: {probe.errors[0]}")
    return problems


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def run(arguments: argparse.Namespace, data_dir: Path, stack: contextlib.ExitStack) -> int:
    count: int = arguments.count
    token = secrets.token_hex(4)
    if arguments.backend == "disk":
        cache_url = f"disk://{data_dir / 'cache'}"
    else:
        url = arguments.redis_url
        cache_url = f"{url}{'&' if '?' in url else '?'}prefix=bench-job-{token}:"
    database = Database.create(arguments.database, arguments.postgres_url, data_dir)
    stack.callback(database.drop)
    configure_environment(database, data_dir, cache_url)
    load_before = load_average()

    started = time.perf_counter()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.test import Client
    from django.utils import timezone

    from extractor.caching.backends import shared_backend
    from extractor.models import Invalidation

    stack.callback(connections.close_all)
    backend = shared_backend(cache_url)
    if arguments.backend == "redis":
        stack.callback(backend.clear)  # this run's prefix only
    print(
        f"Invalidating {count:,} entries as a job: {connection.vendor}, {backend.label}, "
        f"load average {load_before}"
    )
    print(f"  migrated in {time.perf_counter() - started:.1f} s", flush=True)
    keys = make_keys(count, token)
    started = time.perf_counter()
    other_id = insert_entries(database, keys, other_key=make_keys(1, f"{token}-other")[0])
    print(f"  {count:,} rows inserted in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    write_values(backend, keys)
    print(f"  {count:,} values written in {time.perf_counter() - started:.1f} s", flush=True)
    staff = get_user_model().objects.create_user("bench", is_staff=True)
    # Each request over https (`secure=True`; as a Client() default it would not change the
    # scheme): DEBUG off redirects plain http.
    client = Client()
    client.force_login(staff)
    client.get(
        "/invalidations/", secure=True
    )  # imports, templates and URLs warmed before the clock

    probe = Probe(database, other_id)
    prober = threading.Thread(target=probe.run, name="probe-writer", daemon=True)
    worker_log = data_dir / "worker.log"
    with running_worker(worker_log) as worker:
        prober.start()
        time.sleep(2 * PROBE_SECONDS)  # the probe's baseline, before the job
        started = time.perf_counter()
        response = client.post("/invalidate/", {"action": "model", "target": MODEL}, secure=True)
        post_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 302:
            raise BenchmarkError(f"POST /invalidate/ answered {response.status_code}")
        pk = int(response["Location"].rstrip("/").rsplit("/", 1)[-1])
        print(f"  POST /invalidate/ {response.status_code} in {post_ms:.0f} ms", flush=True)
        timeline = follow(client, pk, started, worker)
        timeline.post_ms, timeline.post_status = post_ms, response.status_code
        probe.stop.set()
        prober.join()
        if worker.poll() is not None:
            print(tail(worker_log))
    load_after = load_average()

    print("Checks")
    problems = check(count=count, pk=pk, other_id=other_id, probe=probe, backend=backend, keys=keys)
    invalidation = Invalidation.objects.get(pk=pk)
    recorded = (invalidation.finished_at or timezone.now()) - invalidation.created_at
    summarize(
        arguments,
        connection.vendor,
        timeline,
        probe,
        recorded.total_seconds(),
        invalidation.marked_at,
        invalidation.created_at,
        (load_before, load_after),
    )
    print("check: " + ("ok" if not problems else "; ".join(problems)))
    if problems:
        print(f"worker log (last lines):\n{tail(worker_log)}")
    return 1 if problems else 0


def summarize(
    arguments: argparse.Namespace,
    vendor: str,
    timeline: Timeline,
    probe: Probe,
    recorded_seconds: float,
    marked_at: datetime | None,
    created_at: datetime,
    loads: tuple[str, str],
) -> None:
    count: int = arguments.count
    marked = timeline.marked_seconds or timeline.done_seconds
    removal = timeline.done_seconds - marked
    polls = timeline.polls_ms
    writes = probe.latencies_ms or [0.0]
    waited = (marked_at - created_at).total_seconds() if marked_at else float("nan")
    print()
    print(f"Summary: {count:,} entries, {vendor} + {arguments.backend}, one db_worker")
    print(f"  POST /invalidate/ (queue the job)   {timeline.post_ms:8.0f} ms")
    print(f"  job taken (claimed, marking starts) {waited:8.1f} s after the POST (its rows' times)")
    print(f"  marking done (marked_at seen)       {marked:8.1f} s  (polls every {POLL_SECONDS} s)")
    print(
        f"  removal from the backend            {removal:8.1f} s  "
        f"({count / removal if removal > 0 else float('inf'):,.0f} values/s)"
    )
    print(f"  total, seen by the polls            {timeline.done_seconds:8.1f} s")
    print(f"  total, as recorded (created→finished){recorded_seconds:7.1f} s")
    growth = sorted(set(timeline.matched_seen) - {0})
    print(f"  live progress while marking         {len(growth)} distinct `matched` counts seen")
    print(
        f"  fragment polls: {len(polls)}, p50 {statistics.median(polls):.0f} ms, "
        f"p95 {percentile(polls, 0.95):.0f} ms, max {max(polls):.0f} ms, "
        f"{timeline.poll_errors} not 200"
    )
    print(
        f"  other writer (UPDATE one hit count, every {PROBE_SECONDS} s): "
        f"{len(probe.latencies_ms)} writes, p50 {statistics.median(writes):.1f} ms, "
        f"max {max(writes):.0f} ms, {len(probe.errors)} failed"
    )
    print(f"  load average (1 / 5 / 15 min): {loads[0]} before, {loads[1]} after")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000, help="entries to invalidate")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--backend", choices=["disk", "redis"], default="disk")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a server to create the benchmark's own database on",
    )
    parser.add_argument("--redis-url", default=redis_url(), help="REDIS_URL by default")
    arguments = parser.parse_args(argv)
    if arguments.count < 1:
        parser.error("--count must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="invalidate-job-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        try:
            return run(arguments, data_dir, stack)
        except BenchmarkError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
