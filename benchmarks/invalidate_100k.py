"""Time a bulk invalidation: 100,000 live entries of one schema version, on disk:// and Redis.

Run from the project root:

    .venv/bin/python benchmarks/invalidate_100k.py                  # 100,000 entries
    .venv/bin/python benchmarks/invalidate_100k.py --count 10000    # smaller
    .venv/bin/python benchmarks/invalidate_100k.py --backends disk  # skip Redis

What is timed
    `services.invalidation.invalidation_run` for a schema-version scope, exactly as
    the Invalidate page's POST runs it: one UPDATE marks every row INVALIDATING,
    then the keys leave the backend a chunk at a time, each chunk's rows turning
    INVALIDATED once its delete returned.

Setup (not timed)
    Django runs on a fresh SQLite database in a temporary data directory. For each
    backend, a function is decorated with the real `@instructor_cache` (so keys are
    the decorator's own), its 100,000 envelopes are written to the backend (one
    diskcache transaction, or a Redis pipeline) and their Entry rows bulk-created.
    One call of the decorated function is made first: it must be a hit, which
    proves the stored keys and envelopes are the real thing.

Checked afterwards (the script prints; it never asserts on time): the
invalidation is DONE with every row matched and removed, no row of the run is
left other than INVALIDATED, no key is left in the backend, and the decorated
function now misses. Redis: REDIS_URL or redis://127.0.0.1:6379/0, under a
prefix of this run's own, cleared at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from benchmarks.setup import redis_url, setup_django  # noqa: E402

if TYPE_CHECKING:
    from extractor.caching import CachedFunction
    from extractor.models import SchemaVersion

BATCH = 5000


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's name.")
    age: int = Field(description="Age in years.")


class WouldCallTheLLM(RuntimeError):
    pass


@dataclass(frozen=True)
class Result:
    backend: str
    count: int
    seconds: float
    first_chunk_seconds: float
    problems: list[str]


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        with contextlib.closing(client):
            return bool(client.ping())
    except redis.RedisError:
        return False


def decorated(label: str, backend_url: str) -> tuple[Any, CachedFunction]:
    """A function under the real decorator; it must never run (every call a hit)."""
    from extractor.caching import instructor_cache

    def extract_person(text: str) -> Person:
        raise WouldCallTheLLM(f"a miss on {text!r}")

    extract_person.__qualname__ = extract_person.__name__ = f"extract_person_{label}"
    wrapper = instructor_cache(backend=backend_url)(extract_person)
    return wrapper, wrapper.cache  # type: ignore[attr-defined]


def texts(count: int) -> list[str]:
    return [f"Person {number} is {20 + number % 60} years old." for number in range(count)]


def schema_version_of(cached: CachedFunction) -> SchemaVersion:
    from django.utils import timezone

    from extractor.models import CachedFunction as FunctionRow
    from extractor.models import SchemaVersion

    info = cached.info
    version, _ = SchemaVersion.objects.get_or_create(
        name=info.schema_name,
        fingerprint=info.schema_fingerprint,
        defaults={"number": 1, "json_schema": info.json_schema},
    )
    FunctionRow.objects.update_or_create(
        name=info.name,
        defaults={
            "code_fingerprint": info.code_fingerprint,
            "version": info.version,
            "schema_version": version,
            "backend": cached.backend().label,
            "last_seen_at": timezone.now(),
        },
    )
    return version


def seed(cached: CachedFunction, inputs: list[str], version: SchemaVersion) -> list[str]:
    """Write one envelope per input to the backend and its live Entry row; return the keys."""
    from extractor.caching import DiskBackend, RedisBackend
    from extractor.models import Entry

    backend = cached.backend()
    keys = [cached.cache_key(text) for text in inputs]
    values = [envelope(cached, number) for number in range(len(inputs))]
    if isinstance(backend, DiskBackend):
        with backend.cache.transact():  # one commit, not 100,000
            for key, value in zip(keys, values, strict=True):
                backend.set(key, value)
    elif isinstance(backend, RedisBackend):
        for chunk in batched(zip(keys, values, strict=True), BATCH):
            pipeline = backend.client.pipeline(transaction=False)
            for key, value in chunk:
                pipeline.set(backend.prefix + key, value)
            pipeline.execute()
    else:
        for key, value in zip(keys, values, strict=True):
            backend.set(key, value)

    info = cached.info
    rows = (
        Entry(
            key=key,
            function=info.name,
            schema_version=version,
            code_fingerprint=info.code_fingerprint,
            version=info.version,
            input_fingerprint=hashlib.sha256(text.encode()).hexdigest(),
            arguments={"text": text},
            input_preview=text,
            output={"name": f"Person {number}", "age": 20 + number % 60},
            llm_provider="openai",
            llm_model="gpt-4o-mini",
            prompt_tokens=120,
            completion_tokens=30,
            latency_ms=850.0,
        )
        for number, (key, text) in enumerate(zip(keys, inputs, strict=True))
    )
    for chunk in batched(rows, BATCH):
        Entry.objects.bulk_create(chunk)
    return keys


def envelope(cached: CachedFunction, number: int) -> str:
    return cached.envelope_type(
        schema_fingerprint=cached.info.schema_fingerprint,
        output=Person(name=f"Person {number}", age=20 + number % 60),
        llm_provider="openai",
        llm_model="gpt-4o-mini",
        latency_ms=850.0,
        created_at=time.time(),
    ).model_dump_json()


def batched(items: Any, size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def keys_left(cached: CachedFunction, keys: list[str]) -> int:
    from extractor.caching import RedisBackend

    backend = cached.backend()
    if isinstance(backend, RedisBackend):
        return sum(
            int(backend.client.exists(*[backend.prefix + key for key in chunk]))  # type: ignore[arg-type,misc]
            for chunk in batched(keys, 1000)
        )
    return sum(backend.get(key) is not None for key in keys)


def run_one(label: str, backend_url: str, count: int) -> Result:
    from extractor import recording
    from extractor.models import Entry, Invalidation
    from extractor.selectors.entries import InvalidationScope
    from extractor.services.invalidation import invalidation_count, invalidation_run

    wrapper, cached = decorated(label, backend_url)
    inputs = texts(count)
    version = schema_version_of(cached)
    started = time.perf_counter()
    keys = seed(cached, inputs, version)
    print(
        f"  {label}: seeded {count:,} values and rows in {time.perf_counter() - started:.1f} s "
        f"({cached.backend().label})"
    )
    problems: list[str] = []
    try:
        wrapper(inputs[0])
    except WouldCallTheLLM:
        problems.append("the seeded value was not a hit: keys or envelopes are wrong")
    recording.flush()  # the sanity hit's record is written before the clock starts

    scope = InvalidationScope(Invalidation.Action.SCHEMA_VERSION, str(version.pk))
    if (matched := invalidation_count(scope)) != count:
        problems.append(f"the scope matches {matched:,} live entries, not {count:,}")
    first_chunk: list[float] = []

    def progress(removed: int, matched: int) -> None:
        if not first_chunk:
            first_chunk.append(time.perf_counter() - started)

    started = time.perf_counter()
    invalidation = invalidation_run(scope=scope, by=None, progress=progress)
    seconds = time.perf_counter() - started

    if invalidation.status != Invalidation.Status.DONE:
        problems.append(f"invalidation {invalidation.status}: {invalidation.error}")
    if (invalidation.matched, invalidation.removed) != (count, count):
        problems.append(f"matched {invalidation.matched:,}, removed {invalidation.removed:,}")
    others = Entry.objects.filter(function=cached.info.name).exclude(
        status=Entry.Status.INVALIDATED
    )
    if (left := others.count()) != 0:
        problems.append(f"{left:,} rows are not INVALIDATED")
    if (remaining := keys_left(cached, keys)) != 0:
        problems.append(f"{remaining:,} keys are still in the backend")
    try:
        wrapper(inputs[-1])
        problems.append("the decorated function still hits after the invalidation")
    except WouldCallTheLLM:
        pass
    recording.flush()
    return Result(label, count, seconds, first_chunk[0] if first_chunk else seconds, problems)


def close_database() -> None:
    """Write what the recorder still holds, then let go of the files."""
    from django.db import connections

    from extractor import recording

    try:
        recording.flush()
    finally:
        connections.close_all()


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="entries per backend")
    parser.add_argument("--backends", default="disk,redis", help="comma-separated: disk,redis")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    wanted = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    data_dir = Path(tempfile.mkdtemp(prefix="invalidate-100k-"))
    token = secrets.token_hex(4)
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        setup_django(str(data_dir), record_in_background=False)
        from django.db import connection

        stack.callback(close_database)
        print(
            f"Invalidating {arguments.count:,} entries of one schema version "
            f"(Django on {connection.vendor}, {data_dir})"
        )
        backends: list[tuple[str, str]] = []
        if "disk" in wanted:
            backends.append(("disk", f"disk://{data_dir / 'cache'}"))
        if "redis" in wanted:
            url = redis_url()
            if redis_reachable(url):
                separator = "&" if "?" in url else "?"
                backends.append(("redis", f"{url}{separator}prefix=bench-invalidate-{token}:"))
            else:
                print(f"  redis: skipped, {url} cannot be reached (set REDIS_URL)")
        for label, url in backends:
            if label == "redis":
                from extractor.caching.backends import shared_backend

                stack.callback(shared_backend(url).clear)  # only this run's prefix
            results.append(run_one(label, url, arguments.count))

    print()
    print(f"{'backend':<8} {'entries':>9} {'seconds':>8} {'rows/s':>10} {'first chunk':>12}  check")
    for result in results:
        rate = result.count / result.seconds if result.seconds else float("inf")
        check = "ok" if not result.problems else "; ".join(result.problems)
        print(
            f"{result.backend:<8} {result.count:>9,} {result.seconds:>8.2f} {rate:>10,.0f} "
            f"{result.first_chunk_seconds:>11.2f}s  {check}"
        )
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
