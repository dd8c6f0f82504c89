"""Time the cache HIT path: the recipe, Instructor's own `cache=`, and `@instructor_cache`.

Run from the project root:

    .venv/bin/python benchmarks/hit_path.py            # full run, well under 2 minutes
    .venv/bin/python benchmarks/hit_path.py --quick    # smoke run for CI
    .venv/bin/python benchmarks/hit_path.py --strict   # exit 1 when a target is missed

What is timed
    Every implementation wraps the recipe's `extract(data) -> UserDetail` around an
    Instructor client whose OpenAI SDK answers from an in-process MockTransport
    (benchmarks/subjects.py), so a miss really runs Instructor and nothing leaves
    the machine. The implementations:

    * the recipe's diskcache and Redis decorators, copied verbatim from
      /work/shared/reference/instructor-caching.md (benchmarks/recipe_*.py);
    * Instructor's own `cache=` (AutoCache, and DiskCache), timed on the second
      and later `client.chat.completions.create(...)` calls;
    * `@instructor_cache` on disk://, redis:// (a prefix of its own) and memory://,
      with recording ON exactly as in production: Django is set up, the
      DatabaseRecorder buffers every call and a background thread writes it to a
      fresh SQLite database. Nothing is turned off to make it look faster.

    Each runs on three inputs: the recipe's example (29 bytes), ~2 KB and ~10 KB.
    Long inputs cost `@instructor_cache` more, since it hashes the canonical
    arguments with SHA-256 where the recipe uses the string itself as the key.

Fairness
    * Every timed call gets a fresh, equal string object, made before the timed
      region (`(" " + text)[1:]`), as a request handler would pass: no
      implementation profits from a string whose hash is already cached.
    * Each implementation is warmed up first: one miss, then hits.
    * Rounds are interleaved: 50 rounds of 400 calls (20 for Instructor's own
      cache, which is ~100x slower per hit); each round times every
      implementation in turn on every input, and the order rotates from round to
      round, so drift (CPU frequency, the writer thread, Redis, neighbours on
      the machine) is spread over all of them.
    * Each call is timed on its own with perf_counter_ns; the figure is the
      median per-hit time over all timed calls of an implementation (mean, p90
      and p99 are shown too). The writer thread wakes about once a second and
      takes the interpreter for a few milliseconds from whatever is being timed
      then; the median keeps those calls from deciding the result either way,
      the mean and p99 show them.
    * The database is always a fresh SQLite file in the temporary directory
      (DATABASE_URL is ignored), so the recording check counts only this run.
    * The garbage collector stays on; after warm-up everything alive is moved
      to the permanent generation (gc.freeze), as a pre-forking server does, so
      no implementation pays for scanning the others' objects.

    After timing, the recorder is flushed and the database is checked: every hit
    of `@instructor_cache` has its Call row, and every entry its hit count and
    last hit time. The writer's own cost (off the hit path, in its thread) is
    measured separately and printed. The script prints; it never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from instructor.cache import AutoCache, DiskCache  # noqa: E402

from benchmarks import recipe_diskcache, recipe_redis  # noqa: E402
from benchmarks.setup import redis_url, setup_django  # noqa: E402
from benchmarks.subjects import ANSWER, EXAMPLE_INPUT, MockLLM, UserDetail, extraction  # noqa: E402

if TYPE_CHECKING:
    import instructor

    from extractor.caching import CachedFunction

OURS = "instructor_cache"
RECIPE = "recipe"
INSTRUCTOR = "Instructor cache="
FILLER = " Jason lives in Toronto, works as a data engineer and likes long walks."


@dataclass(frozen=True)
class Plan:
    rounds: int
    calls: int  # timed calls per round, per implementation and input
    slow_calls: int  # the same for Instructor's own cache, ~100x slower per hit
    warmup: int  # hits after the warm-up miss
    writer_hits: int  # hits written by the measured recorder flush


FULL = Plan(rounds=50, calls=400, slow_calls=20, warmup=200, writer_hits=5000)
QUICK = Plan(rounds=4, calls=100, slow_calls=5, warmup=20, writer_hits=500)


@dataclass(frozen=True)
class Size:
    label: str
    text: str


@dataclass
class Subject:
    """One implementation on one backend."""

    implementation: str
    backend: str
    call: Callable[[str], Any]
    calls_per_round: int
    cached: CachedFunction | None = None  # ours only: what the recording check reads
    hits: dict[str, int] = field(default_factory=dict)  # input label -> hits made

    @property
    def label(self) -> str:
        return f"{self.implementation} [{self.backend}]"


@dataclass(frozen=True)
class Stat:
    median_us: float
    mean_us: float
    p90_us: float
    p99_us: float
    count: int


@dataclass(frozen=True)
class Target:
    description: str
    ratio: float
    limit: float
    at_most: bool  # True: ratio <= limit is met; False: ratio >= limit is met

    @property
    def met(self) -> bool:
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit


class BenchmarkError(RuntimeError):
    pass


# -- setup ---------------------------------------------------------------------------


def redis_server_version(url: str) -> str | None:
    """The server's version, or None when it cannot be reached (Redis rows are skipped)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        with contextlib.closing(client):
            info = cast(dict[str, Any], client.info("server"))
            return str(info["redis_version"])
    except redis.RedisError:
        return None


def without_password(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(password, "***") if password else url


def sizes() -> list[Size]:
    def padded(length: int) -> str:
        text = EXAMPLE_INPUT + "."
        while len(text) < length:
            text += FILLER
        return text[:length]

    return [
        Size(f"{len(EXAMPLE_INPUT)} B", EXAMPLE_INPUT),
        Size("2 KB", padded(2 * 1024)),
        Size("10 KB", padded(10 * 1024)),
    ]


# -- the implementations -------------------------------------------------------------


def recipe_subjects(
    stack: contextlib.ExitStack,
    client: instructor.Instructor,
    directory: Path,
    url: str | None,
    token: str,
    plan: Plan,
) -> list[Subject]:
    cache = recipe_diskcache.open_cache(str(directory / "recipe-diskcache"))
    stack.callback(cache.close)
    # The recipe's decorator is copied verbatim, so it has no type hints.
    plain = extraction(f"recipe_disk_{token}", client)
    on_disk = recipe_diskcache.instructor_cache(plain)  # type: ignore[no-untyped-call]
    subjects = [Subject(RECIPE, "diskcache", on_disk, plan.calls)]
    if url is not None:
        name = f"recipe_redis_{token}"
        connection = recipe_redis.open_cache(url)
        stack.callback(connection.close)
        stack.callback(delete_matching, connection, f"{name}-*")  # the recipe's keys only
        on_redis = recipe_redis.instructor_cache(extraction(name, client))  # type: ignore[no-untyped-call]
        subjects.append(Subject(RECIPE, "redis", on_redis, plan.calls))
    return subjects


def delete_matching(connection: redis.Redis, pattern: str) -> None:
    keys = list(connection.scan_iter(match=pattern, count=1000))
    if keys:
        connection.delete(*keys)


def instructor_subjects(
    stack: contextlib.ExitStack, llm: MockLLM, directory: Path, token: str, plan: Plan
) -> list[Subject]:
    auto = AutoCache(maxsize=1000)
    disk = DiskCache(directory=str(directory / "instructor-diskcache"))
    stack.callback(disk._cache.close)
    return [
        Subject(
            INSTRUCTOR,
            "AutoCache",
            extraction(f"instructor_auto_{token}", llm.client(auto)),
            plan.slow_calls,
        ),
        Subject(
            INSTRUCTOR,
            "DiskCache",
            extraction(f"instructor_disk_{token}", llm.client(disk)),
            plan.slow_calls,
        ),
    ]


def our_subjects(
    stack: contextlib.ExitStack,
    client: instructor.Instructor,
    directory: Path,
    url: str | None,
    token: str,
    plan: Plan,
) -> list[Subject]:
    backends = [("disk", f"disk://{directory / 'ours-disk'}"), ("memory", "memory://")]
    if url is not None:
        separator = "&" if "?" in url else "?"
        backends.insert(1, ("redis", f"{url}{separator}prefix=bench-{token}:"))
    return [our_subject(stack, client, name, backend, token, plan) for name, backend in backends]


def our_subject(
    stack: contextlib.ExitStack,
    client: instructor.Instructor,
    name: str,
    backend: str,
    token: str,
    plan: Plan,
) -> Subject:
    from extractor.caching import instructor_cache

    wrapper = instructor_cache(backend=backend)(extraction(f"ours_{name}_{token}", client))
    cached: CachedFunction = wrapper.cache  # type: ignore[attr-defined]
    if name == "redis":
        stack.callback(cached.backend().clear)  # only keys under this run's prefix
    return Subject(OURS, name, wrapper, plan.calls, cached=cached)


# -- timing --------------------------------------------------------------------------


def fresh_copies(text: str, count: int) -> list[str]:
    """`count` distinct string objects equal to `text`, none with a cached hash."""
    return [(" " + text)[1:] for _ in range(count)]


def time_calls(call: Callable[[str], Any], inputs: Sequence[str]) -> list[int]:
    """Nanoseconds of each call, one argument object per call."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    for data in inputs:
        start = clock()
        call(data)
        append(clock() - start)
    return samples


def warm_up(subject: Subject, size: Size, hits: int, llm: MockLLM) -> None:
    """One miss that reaches the LLM, then hits that must not."""
    before = llm.requests
    subject.call(fresh_copies(size.text, 1)[0])
    if llm.requests != before + 1:
        raise BenchmarkError(f"{subject.label}: the first call on {size.label} was not a miss")
    # Compared as data: Instructor's private _raw_response differs from call to call.
    expected = UserDetail.model_validate(ANSWER).model_dump()
    for data in fresh_copies(size.text, hits):
        if subject.call(data).model_dump() != expected:
            raise BenchmarkError(f"{subject.label}: a hit on {size.label} returned another value")
    if llm.requests != before + 1:
        raise BenchmarkError(f"{subject.label}: warm-up hits on {size.label} reached the LLM")
    subject.hits[size.label] = hits


Key = tuple[str, str]  # (subject label, input label)


def run_rounds(
    subjects: list[Subject], inputs: list[Size], plan: Plan, llm: MockLLM
) -> dict[Key, list[list[int]]]:
    """Nanoseconds per call, per subject and input, one list per round."""
    samples: dict[Key, list[list[int]]] = {}
    before = llm.requests
    started = time.perf_counter()
    for number in range(plan.rounds):
        shift = number % len(subjects)
        order = subjects[shift:] + subjects[:shift]
        for size in inputs:
            for subject in order:
                arguments = fresh_copies(size.text, subject.calls_per_round)
                taken = time_calls(subject.call, arguments)
                samples.setdefault((subject.label, size.label), []).append(taken)
                subject.hits[size.label] += len(taken)
        if (number + 1) % 10 == 0 or number + 1 == plan.rounds:
            elapsed = time.perf_counter() - started
            print(
                f"  round {number + 1}/{plan.rounds}, {elapsed:.0f} s", file=sys.stderr, flush=True
            )
    if llm.requests != before:
        raise BenchmarkError(f"{llm.requests - before} timed calls reached the LLM: not all hits")
    return samples


@dataclass(frozen=True)
class Measurements:
    stats: dict[Key, Stat]  # over all timed calls
    round_medians: dict[Key, list[float]]  # µs, one per round

    @classmethod
    def of(cls, samples: dict[Key, list[list[int]]]) -> Measurements:
        return cls(
            stats={
                key: summarize([ns for part in parts for ns in part])
                for key, parts in samples.items()
            },
            round_medians={
                key: [statistics.median(part) / 1000 for part in parts]
                for key, parts in samples.items()
            },
        )

    def round_ratios(self, top: Key, bottom: Key) -> list[float]:
        pairs = zip(self.round_medians[top], self.round_medians[bottom], strict=True)
        return [a / b for a, b in pairs]


def summarize(nanoseconds: list[int]) -> Stat:
    ordered = sorted(nanoseconds)
    count = len(ordered)
    middle = count // 2
    median = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return Stat(
        median_us=median / 1000,
        mean_us=sum(ordered) / count / 1000,
        p90_us=ordered[min(count - 1, int(count * 0.9))] / 1000,
        p99_us=ordered[min(count - 1, int(count * 0.99))] / 1000,
        count=count,
    )


# -- recording -----------------------------------------------------------------------


def measure_writer(subject: Subject, size: Size, hits: int) -> str:
    """What the background thread spends writing one hit, off the hit path.

    The installed recorder is drained first; then `hits` hits go to a synchronous
    recorder whose flush is timed on a table already holding the benchmark's rows.
    """
    from extractor.caching.events import get_recorder, set_recorder
    from extractor.models import Call
    from extractor.recording import DatabaseRecorder

    get_recorder().flush()
    rows_before = Call.objects.count()
    recorder = DatabaseRecorder(background=False, buffer_max=hits + 1)
    # Recorder says flush() -> None; DatabaseRecorder returns a count (mypy objects).
    previous = set_recorder(recorder)
    try:
        for data in fresh_copies(size.text, hits):
            subject.call(data)
    finally:
        set_recorder(previous)
    subject.hits[size.label] += hits
    started = time.perf_counter()
    written = recorder.flush()
    seconds = time.perf_counter() - started
    return (
        f"Recording, off the hit path: the writer spends {seconds / written * 1e6:.1f} µs per "
        f"hit in its thread ({written:,} hits of {subject.label} written in "
        f"{seconds * 1000:.0f} ms, {rows_before:,} Call rows already in the table)"
    )


def check_recording(subjects: list[Subject], inputs: list[Size]) -> list[str]:
    """Flush the recorder, then compare the database with the hits made; print and
    return what is missing."""
    from django.db.models import Sum

    from extractor.caching.events import get_recorder
    from extractor.models import Call, CallRollup, Entry

    get_recorder().flush()
    problems: list[str] = []
    total = 0
    for subject in subjects:
        if subject.cached is None:
            continue
        name = subject.cached.info.name
        made = sum(subject.hits.values())
        total += made
        rows = Call.objects.filter(function=name, outcome=Call.Outcome.HIT).count()
        misses = Call.objects.filter(function=name, outcome=Call.Outcome.MISS).count()
        counted = CallRollup.objects.filter(
            function=name, span=CallRollup.Span.HOUR, outcome=Call.Outcome.HIT
        ).aggregate(calls=Sum("calls"), itemised=Sum("itemised"))
        print(
            f"  {subject.label:<28} {made:>8,} hits made, {counted['calls'] or 0:>8,} counted,"
            f" {rows:>8,} itemised (hit rows), {misses} miss rows"
        )
        if counted["calls"] != made:
            problems.append(f"{subject.label}: {made:,} hits made but {counted['calls']} counted")
        if rows != (counted["itemised"] or 0):
            problems.append(
                f"{subject.label}: the counters say {counted['itemised']} itemised, {rows:,} rows"
            )
        if misses != len(inputs):
            problems.append(f"{subject.label}: {misses} miss rows, expected {len(inputs)}")
        for size in inputs:
            key = subject.cached.cache_key(size.text)
            entry = Entry.objects.filter(key=key, status=Entry.Status.LIVE).first()
            problems.extend(entry_problems(subject, size, entry))
    if problems:
        for problem in problems:
            print(f"  MISSING: {problem}")
    else:
        print(
            f"  all {total:,} hits recorded (counters, entry hit counts and last hits; hit rows"
            " up to EXTRACTOR_ITEMISED_HITS_PER_SECOND)"
        )
    return problems


def entry_problems(subject: Subject, size: Size, entry: Any) -> list[str]:
    where = f"{subject.label} {size.label}"
    if entry is None:
        return [f"{where}: no live Entry"]
    problems = []
    made = subject.hits[size.label]
    if entry.hit_count != made:
        problems.append(f"{where}: Entry.hit_count {entry.hit_count:,}, hits made {made:,}")
    if entry.last_hit_at is None:
        problems.append(f"{where}: Entry.last_hit_at not set")
    elif entry.last_hit_at < entry.created_at:
        problems.append(f"{where}: Entry.last_hit_at before the entry was created")
    return problems


# -- report --------------------------------------------------------------------------


def print_header(plan: Plan, redis_version: str | None, url: str) -> None:
    from django.conf import settings
    from django.db import connection

    from extractor.caching.events import get_recorder

    recorder = get_recorder()
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("instructor", "openai", "pydantic", "diskcache", "redis", "Django")
    )
    print("Cache hit path benchmark")
    print(
        f"  Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {packages}"
    )
    shown = without_password(url)
    if redis_version:
        print(f"  Redis: {redis_version} at {shown}")
    else:
        print(f"  Redis: unreachable at {shown}; its rows and targets are skipped")
    print(
        f"  recording: {type(recorder).__name__}, "
        f"background thread {'on' if getattr(recorder, 'background', False) else 'OFF'}, "
        f"flush every {settings.EXTRACTOR_RECORD_FLUSH_SECONDS:g} s, "
        f"{connection.vendor} at {settings.DATABASES['default']['NAME']}"
    )
    print(
        f"  {plan.rounds} interleaved rounds x {plan.calls:,} timed hits per implementation "
        f"and input ({plan.slow_calls:,} for {INSTRUCTOR}), after {plan.warmup:,} warm-up hits"
    )
    print()


def print_table(subjects: list[Subject], inputs: list[Size], stats: dict[Key, Stat]) -> None:
    header = (
        f"{'implementation':<19} {'backend':<10} {'input':>6} {'median µs':>10} "
        f"{'mean µs':>10} {'p90 µs':>10} {'p99 µs':>10} {'calls':>8}"
    )
    print(header)
    print("-" * len(header))
    for size in inputs:
        for subject in subjects:
            stat = stats[(subject.label, size.label)]
            figures = (stat.median_us, stat.mean_us, stat.p90_us, stat.p99_us)
            print(
                f"{subject.implementation:<19} {subject.backend:<10} {size.label:>6} "
                + "".join(f" {figure:>10.1f}" for figure in figures)
                + f" {stat.count:>8,}"
            )
        print()


def find(subjects: list[Subject], implementation: str, backend: str) -> Subject | None:
    for subject in subjects:
        if subject.implementation == implementation and subject.backend == backend:
            return subject
    return None


def compare(
    title: str,
    pair: tuple[Subject | None, Subject | None],
    limit: float | None,
    at_most: bool,
    inputs: list[Size],
    measured: Measurements,
) -> list[Target]:
    """Print `numerator / denominator` per input; targets when `limit` is given.

    The ratio is of the medians over all timed calls; the spread of the same ratio
    taken round by round (quartiles) shows how much it moved during the run.
    """
    numerator, denominator = pair
    if numerator is None or denominator is None:
        print(f"{title}: not measured (Redis unreachable)")
        return []
    bound = "" if limit is None else f" (target {'<=' if at_most else '>='} {limit:.2f}x)"
    print(f"{title}{bound}")
    targets = []
    for size in inputs:
        top_key, bottom_key = (numerator.label, size.label), (denominator.label, size.label)
        top = measured.stats[top_key].median_us
        bottom = measured.stats[bottom_key].median_us
        ratio = top / bottom
        low, _, high = statistics.quantiles(measured.round_ratios(top_key, bottom_key), n=4)
        line = (
            f"  {size.label:>6}  {ratio:8.3f}x   {top:7.1f} / {bottom:7.1f} µs "
            f"({top - bottom:+7.1f} µs)   middle half of rounds {low:.2f}-{high:.2f}x"
        )
        if limit is not None:
            target = Target(f"{title}, {size.label}", ratio, limit, at_most)
            targets.append(target)
            line += "   met" if target.met else "   MISSED"
        print(line)
    return targets


def print_ratios(
    subjects: list[Subject], inputs: list[Size], measured: Measurements
) -> list[Target]:
    def pick(implementation: str, backend: str) -> Subject | None:
        return find(subjects, implementation, backend)

    print("Ratios of median per-hit times")
    # (title, numerator, denominator, limit, whether the limit is a ceiling)
    comparisons: list[tuple[str, tuple[str, str], tuple[str, str], float | None, bool]] = [
        ("ours / recipe, diskcache", (OURS, "disk"), (RECIPE, "diskcache"), 1.0, True),
        ("ours / recipe, Redis", (OURS, "redis"), (RECIPE, "redis"), 1.15, True),
        (
            "Instructor AutoCache hit / ours on memory://",
            (INSTRUCTOR, "AutoCache"),
            (OURS, "memory"),
            50,
            False,
        ),
        (
            "Instructor DiskCache hit / ours on disk://",
            (INSTRUCTOR, "DiskCache"),
            (OURS, "disk"),
            50,
            False,
        ),
        (
            "Instructor AutoCache hit / ours on Redis (for information)",
            (INSTRUCTOR, "AutoCache"),
            (OURS, "redis"),
            None,
            False,
        ),
    ]
    targets: list[Target] = []
    for title, numerator, denominator, limit, at_most in comparisons:
        pair = (pick(*numerator), pick(*denominator))
        targets += compare(title, pair, limit, at_most, inputs, measured)
    return targets


# -- main ----------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a target is missed or a hit is not recorded",
    )
    return parser.parse_args(argv)


def build_subjects(
    stack: contextlib.ExitStack, llm: MockLLM, data_dir: Path, url: str | None, plan: Plan
) -> list[Subject]:
    token = secrets.token_hex(4)  # in every name and key prefix: a run touches only its own
    client = llm.client()
    return (
        recipe_subjects(stack, client, data_dir, url, token, plan)
        + our_subjects(stack, client, data_dir, url, token, plan)
        + instructor_subjects(stack, llm, data_dir, token, plan)
    )


def report_targets(targets: list[Target], problems: list[str], requests_ok: bool) -> bool:
    missed = [target for target in targets if not target.met]
    print(f"Targets: {len(targets) - len(missed)} met, {len(missed)} missed")
    for target in missed:
        print(f"  missed: {target.description}: {target.ratio:.3f}x")
    return not missed and not problems and requests_ok


def benchmark(plan: Plan, data_dir: Path, stack: contextlib.ExitStack) -> bool:
    """Run everything and print the report; True when every target was met."""
    url = redis_url()
    redis_version = redis_server_version(url)
    setup_django(str(data_dir), record_in_background=True)
    print_header(plan, redis_version, url)
    llm = MockLLM()
    subjects = build_subjects(stack, llm, data_dir, url if redis_version else None, plan)
    inputs = sizes()
    print("warming up", file=sys.stderr, flush=True)
    for size in inputs:
        for subject in subjects:
            warm_up(subject, size, plan.warmup, llm)
    gc.collect()
    gc.freeze()
    samples = run_rounds(subjects, inputs, plan, llm)
    measured = Measurements.of(samples)
    print_table(subjects, inputs, measured.stats)
    targets = print_ratios(subjects, inputs, measured)
    print()
    memory = find(subjects, OURS, "memory")
    if memory is None:
        raise BenchmarkError("no memory:// subject")
    print(measure_writer(memory, inputs[0], plan.writer_hits))
    print("Recording check (after get_recorder().flush())")
    problems = check_recording(subjects, inputs)
    expected = len(subjects) * len(inputs)
    print(
        f"Mock LLM: {llm.requests} requests, {expected} expected "
        "(one miss per implementation and input; every other call was a hit)"
    )
    print()
    return report_targets(targets, problems, llm.requests == expected)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    plan = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(prefix="hit-path-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        stack.callback(close_database)
        ok = benchmark(plan, data_dir, stack)
    print(f"Total time {time.perf_counter() - started:.0f} s")
    return 1 if arguments.strict and not ok else 0


def close_database() -> None:
    """Write what the recorder still holds (after a crash), then let go of the files."""
    from django.db import connections

    from extractor.caching.events import get_recorder

    try:
        get_recorder().flush()
    finally:
        connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
