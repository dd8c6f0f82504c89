"""Sustained cache hits from 4 threads: is every call counted, and how late is it written?

Run from the project root:

    .venv/bin/python benchmarks/recording_load.py --database sqlite
    .venv/bin/python benchmarks/recording_load.py --database postgres --backend disk
    .venv/bin/python benchmarks/recording_load.py --database sqlite --seconds 5   # smoke run

The setup
    A fresh database, migrated: on PostgreSQL a new `cachesite_bench_<random>`
    database next to the one --postgres-url names (dropped at the end), on
    SQLite a file in a temporary directory. Django is set up with the
    project's settings, so `django.setup()` installs the DatabaseRecorder as
    production does (background writer on, EXTRACTOR_RECORD_* at their
    defaults unless the environment sets them; the header prints them).
    The decorated function is the recipe's `extract` on an Instructor client
    whose OpenAI SDK answers from an in-process mock (benchmarks/subjects.py),
    under `@instructor_cache` on memory:// or disk://.

What is run
    200 distinct inputs are called once each (misses, every one reaching the
    mock LLM) and flushed; then --threads threads call hits over those 200
    inputs as fast as they can for --seconds, each counting its calls. Then
    the threads are stopped and the recorder is closed (the writer thread
    stopped, everything left written, as at a graceful exit); that close is
    timed as the exit flush.

The lag
    Every 0.5 s during the run, the age of the oldest record not yet committed
    to the database: a record waits in the recorder's deque, then in its tally
    (folded into counts, not yet written), then in the tally being written.
    Records carry their call's start time (perf_counter) and a tally the start
    of the first record folded into it, so the age is read off them with no
    query; the tally in flight is seen by wrapping the recorder's private
    `_write` on this one instance: once per write, never on the hit path.

What is printed
    Calls made (per thread), Call rows written (itemised, per outcome), the
    sum of Entry.hit_count (counted), the hits in the counters (CallRollup)
    and how many of them were itemised, recorder.dropped and the
    DroppedRecords saved, calls lost (made - counted), the hit rate, lag
    p50/p99/max, the exit flush time and the load average before and after.
    The script never asserts on time; it exits 1 only when the run itself
    failed (an error, or a timed call that was not a hit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pages_at_scale import Database, database_version  # noqa: E402
from benchmarks.subjects import EXAMPLE_INPUT, MockLLM, extraction  # noqa: E402

if TYPE_CHECKING:
    from extractor.caching.events import Record
    from extractor.recording import DatabaseRecorder
    from extractor.recording.tally import Tally

KEYS = 200
SAMPLE_SECONDS = 0.5


class BenchmarkError(RuntimeError):
    pass


# -- setup ---------------------------------------------------------------------------


def create_database(kind: str, postgres_url: str, data_dir: Path) -> Database:
    if kind == "postgres":
        return Database.create(kind, postgres_url, data_dir)
    path = data_dir / "recording-load.sqlite3"
    return Database(kind, f"sqlite:///{path}", directory=data_dir)


def setup_django(database_url: str, data_dir: Path) -> None:
    """The project's settings on the given database, recording as in production."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "cachesite.settings"
    os.environ["CACHESITE_DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = database_url
    os.environ["EXTRACTOR_RECORD_IN_BACKGROUND"] = "1"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def installed_recorder() -> DatabaseRecorder:
    from extractor.caching.events import get_recorder
    from extractor.recording import DatabaseRecorder

    recorder = get_recorder()
    if not isinstance(recorder, DatabaseRecorder) or not recorder.background:
        raise BenchmarkError(
            f"django.setup() installed {type(recorder).__name__}, not a background"
            " DatabaseRecorder: the run would not be production's"
        )
    return recorder


def backend_url(backend: str, data_dir: Path) -> str:
    return "memory://" if backend == "memory" else f"disk://{data_dir / 'cache'}"


def inputs() -> list[str]:
    return [f"{EXAMPLE_INPUT} (record {number})" for number in range(KEYS)]


# -- the lag -------------------------------------------------------------------------


def started_of(record: Record) -> float:
    # Hits are (info, key, started, latency) tuples; other calls are CallEvents.
    return record[2] if isinstance(record, tuple) else record.started


class LagProbe:
    """The age of the oldest record not yet committed, read off the records.

    A record waits in the recorder's deque, then in its tally (folded, not yet
    written), then in the tally being written until that transaction commits.
    The probe reads the deque's head and each tally's `oldest` (the start of
    the first record folded into it); `_write` of this recorder is wrapped to
    see the tally in flight: once per write, never on the hit path.
    """

    def __init__(self, recorder: DatabaseRecorder) -> None:
        self.recorder = recorder
        self.in_flight: float | None = None
        self.samples: list[float] = []
        self.pending: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-probe", daemon=True)
        write = recorder._write

        def noting_write(tally: Tally) -> int:
            self.in_flight = tally.oldest
            try:
                return write(tally)
            finally:
                self.in_flight = None

        recorder._write = noting_write  # type: ignore[method-assign]

    def _head(self) -> float | None:
        try:
            return started_of(self.recorder._buffer[0])
        except IndexError:
            return None

    def oldest_age(self) -> float:
        now = time.perf_counter()
        waiting = (self.in_flight, self.recorder._tally.oldest, self._head())
        starts = [start for start in waiting if start is not None]
        return now - min(starts) if starts else 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.samples.append(self.oldest_age())
            self.pending.append(self.recorder.pending())


# -- the run -------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float = 0.0
    per_thread: list[int] = field(default_factory=list)
    exit_flush: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(self.per_thread)


def warm(call: Callable[[str], Any], keys: list[str], llm: MockLLM) -> None:
    for data in keys:
        call(data)
    if llm.requests != len(keys):
        raise BenchmarkError(f"{len(keys)} warm-up calls made {llm.requests} LLM requests")


def hammer(
    call: Callable[[str], Any], keys: list[str], threads: int, seconds: float, run: Run
) -> None:
    """`threads` threads calling hits over `keys` for `seconds`, each counting its calls."""
    stop = threading.Event()
    run.per_thread = [0] * threads
    go = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        made = 0
        try:
            go.wait()
            # The stop flag is read once per pass over the keys, not once per call.
            offset = index * len(keys) // threads
            ordered = keys[offset:] + keys[:offset]
            while not stop.is_set():
                for data in ordered:
                    call(data)
                made += len(ordered)
        except Exception as exc:
            run.errors.append(f"thread {index}: {type(exc).__name__}: {exc}")
        finally:
            run.per_thread[index] = made

    workers = [
        threading.Thread(target=worker, args=(index,), name=f"hits-{index}")
        for index in range(threads)
    ]
    for thread in workers:
        thread.start()
    go.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    run.seconds = time.perf_counter() - started


@dataclass(frozen=True)
class Counts:
    hit_rows: int
    miss_rows: int
    other_rows: int
    counted: int  # sum of Entry.hit_count
    entries: int
    live_entries: int
    rollup_hits: int  # hits in the counters (hour rows)
    rollup_itemised: int  # of which the counters say were itemised
    dropped_saved: int  # sum of DroppedRecords.count


def database_counts() -> Counts:
    from django.db.models import Count, Sum

    from extractor.models import Call, CallRollup, DroppedRecords, Entry

    by_outcome = dict(
        Call.objects.values_list("outcome")
        .annotate(rows=Count("id"))
        .values_list("outcome", "rows")
    )
    hit_rows = by_outcome.pop(Call.Outcome.HIT, 0)
    miss_rows = by_outcome.pop(Call.Outcome.MISS, 0)
    return Counts(
        hit_rows=hit_rows,
        miss_rows=miss_rows,
        other_rows=sum(by_outcome.values()),
        counted=Entry.objects.aggregate(total=Sum("hit_count"))["total"] or 0,
        entries=Entry.objects.count(),
        live_entries=Entry.objects.filter(status=Entry.Status.LIVE).count(),
        **{
            key: value or 0
            for key, value in CallRollup.objects.filter(span="hour", outcome=Call.Outcome.HIT)
            .aggregate(rollup_hits=Sum("calls"), rollup_itemised=Sum("itemised"))
            .items()
        },
        dropped_saved=DroppedRecords.objects.aggregate(total=Sum("count"))["total"] or 0,
    )


# -- report --------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def print_header(arguments: argparse.Namespace, recorder: DatabaseRecorder) -> None:
    from django.conf import settings

    print("Recording under sustained hits")
    print(
        f"  {database_version()}; {os.cpu_count()} CPUs; backend {arguments.backend}://;"
        f" {arguments.threads} threads for {arguments.seconds:g} s over {KEYS} keys"
    )
    print(
        f"  recorder: background writer {'on' if recorder.background else 'OFF'},"
        f" flush every {recorder.flush_seconds:g} s, buffer max {recorder.buffer_max:,},"
        f" exit seconds {recorder.exit_seconds:g},"
        f" DATABASE_CONN_MAX_AGE {settings.DATABASES['default'].get('CONN_MAX_AGE')}"
    )


def print_report(
    run: Run, counts: Counts, probe: LagProbe, recorder: DatabaseRecorder, loads: list[str]
) -> None:
    lost = run.hits - counts.counted
    print()
    print(
        f"calls made           {run.hits + KEYS:>12,}  ({run.hits:,} hits + {KEYS} warm-up misses)"
    )
    print(f"  hits per thread    {', '.join(f'{made:,}' for made in run.per_thread)}")
    print(
        f"hit rate             {run.hits / run.seconds:>12,.0f} calls/s  over {run.seconds:.2f} s"
    )
    print(
        f"Call rows written    {counts.hit_rows + counts.miss_rows + counts.other_rows:>12,}"
        f"  (itemised: {counts.hit_rows:,} hit, {counts.miss_rows:,} miss,"
        f" {counts.other_rows:,} other)"
    )
    print(
        f"hits counted         {counts.counted:>12,}  (sum of Entry.hit_count over"
        f" {counts.entries:,} entries, {counts.live_entries:,} live)"
    )
    print(
        f"hits in the counters {counts.rollup_hits:>12,}  (CallRollup, hour rows;"
        f" {counts.rollup_itemised:,} of them itemised)"
    )
    print(
        f"recorder.dropped     {recorder.dropped:>12,}  (DroppedRecords in the database:"
        f" {counts.dropped_saved:,})"
    )
    print(f"calls lost           {lost:>12,}  (hits made - hits counted on their entries)")
    print(
        f"counters lost        {run.hits - counts.rollup_hits:>12,}"
        "  (hits made - hits in the counters)"
    )
    print(
        f"hits not itemised    {run.hits - counts.hit_rows:>12,}  (hits made - hit rows;"
        " counted only, by design)"
    )
    print(f"misses not itemised  {KEYS - counts.miss_rows:>12,}  (warm-up misses - miss rows)")
    samples = probe.samples
    print(
        f"lag (oldest unwritten record, {len(samples)} samples every {SAMPLE_SECONDS:g} s):"
        f" p50 {statistics.median(samples) if samples else 0.0:.3f} s,"
        f" p99 {percentile(samples, 0.99):.3f} s, max {max(samples, default=0.0):.3f} s;"
        f" records waiting in the buffer at most {max(probe.pending, default=0):,}"
    )
    print(
        f"exit flush           {run.exit_flush:>12.3f} s"
        "  (recorder.close() once the threads stopped)"
    )
    print(f"load average         start {loads[0]}, end {loads[-1]}")


# -- main ----------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--backend", choices=["memory", "disk"], default="memory")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a server to create the benchmark's own database on",
    )
    arguments = parser.parse_args(argv)
    if arguments.seconds <= 0 or arguments.threads < 1:
        parser.error("use a positive --seconds and at least one thread")
    return arguments


def benchmark(arguments: argparse.Namespace, data_dir: Path, stack: contextlib.ExitStack) -> None:
    database = create_database(arguments.database, arguments.postgres_url, data_dir)
    stack.callback(database.drop)
    stack.callback(close_connections)
    setup_django(database.url, data_dir)
    recorder = installed_recorder()
    stack.callback(recorder.close)  # idempotent; stops the writer before the drop
    print_header(arguments, recorder)

    from extractor.caching import instructor_cache

    llm = MockLLM()
    name = f"recording_load_{secrets.token_hex(4)}"
    call = instructor_cache(backend=backend_url(arguments.backend, data_dir))(
        extraction(name, llm.client())
    )
    keys = inputs()
    loads = [load_average()]
    print("warming up", file=sys.stderr, flush=True)
    warm(call, keys, llm)
    recorder.flush()  # the run starts with an empty buffer: its lag is the hits'
    probe = LagProbe(recorder)
    run = Run()
    print(f"hitting for {arguments.seconds:g} s", file=sys.stderr, flush=True)
    probe.start()
    hammer(call, keys, arguments.threads, arguments.seconds, run)
    probe.stop()
    started = time.perf_counter()
    recorder.close()
    run.exit_flush = time.perf_counter() - started
    loads.append(load_average())
    if run.errors:
        raise BenchmarkError("; ".join(run.errors))
    if llm.requests != KEYS:
        raise BenchmarkError(f"{llm.requests - KEYS} calls of the run reached the LLM: not hits")
    print_report(run, database_counts(), probe, recorder, loads)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="recording-load-"))
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            benchmark(arguments, data_dir, stack)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
