"""Time every dashboard page on a database filled to a busy team's scale with SQL.

Run from the project root:

    .venv/bin/python benchmarks/pages_at_scale.py --database postgres \
        --entries 1000000 --calls 5000000
    .venv/bin/python benchmarks/pages_at_scale.py --database sqlite \
        --entries 100000 --calls 500000
    .venv/bin/python benchmarks/pages_at_scale.py --database sqlite --quick    # smoke run

The database
    Always the benchmark's own: on PostgreSQL a fresh `cachesite_bench_<random>`
    database next to the one --postgres-url names (dropped at the end unless
    --keep), on SQLite a file in a temporary directory. The project's migrations
    build the tables; the rows come from SQL, never the ORM row by row:
    INSERT ... SELECT over generate_series (PostgreSQL) or a recursive CTE
    (SQLite), with the tables' secondary indexes (and on SQLite the search
    index's triggers) dropped during the load and rebuilt from their own
    definitions afterwards (the FTS5 table from the entries), then (VACUUM)
    ANALYZE. --keep and then --reuse <database> time the pages again without
    loading (migrations are applied first, so a new index is built).

    The shape is a few weeks of one busy team: 3 schemas with 3 or 4 versions
    each, 20 functions, 6 LLM models. Entries are spread over 28 days: about 65%
    live and current, 10% stale by code, 5% stale by schema, 5% expired, 7%
    invalidated (by 7 invalidations), 8% replaced; inputs and outputs are JSON
    with names, cities and companies to search for. Calls are spread over the
    same weeks, each after its entry was stored: 80% hits, 11% misses with
    reasons, 3% errors, 3% bypasses, 3% replays, with tokens and latencies. One
    entry gets 10,000 calls (its page is timed). Hit counts and last hits of
    the entries are computed from the calls.

What is timed
    Every page, through Django's test Client logged in as a staff user, the
    whole request (middleware, view, queries, template). Each page is asked
    once untimed (its status is checked and its SQL queries counted with
    CaptureQueriesContext), then --repeat times, round-robin over the pages so
    that drift (the machine's load, caches) spreads over all of them. The deep
    pages ("page 1000" of entries and of calls) follow an `after` cursor found
    once, untimed, with an OFFSET: the pages themselves never OFFSET. The
    script prints p50, p95 and the query count of each page, against the
    issue's target (p95 under 200 ms on PostgreSQL at 1M entries / 5M calls,
    under 300 ms on SQLite at 100k / 500k); it never asserts on time. A page
    answering other than 200 is an error: printed, counted, not timed, and the
    exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.test import Client

DAY = 86_400.0
WEEKS = 28 * DAY  # how far back entries and calls go
HOT_CALLS = 10_000  # calls of the one entry whose page is timed
TARGETS_MS = {"postgres": 200.0, "sqlite": 300.0}
TARGET_SCALE = {"postgres": (1_000_000, 5_000_000), "sqlite": (100_000, 500_000)}
QUICK = (5_000, 25_000)
SEARCH_TERM = "Toronto"  # one city in twelve: a search that matches many entries
DEEP_PAGE = 1000

SCHEMAS: dict[str, list[dict[str, str]]] = {
    # name -> versions, oldest first: field name -> description
    "orders.schemas.Invoice": [
        {"number": "Invoice number.", "total": "Total amount."},
        {"number": "Invoice number.", "total": "Total amount.", "currency": "ISO currency."},
        {
            "number": "Invoice number as printed.",
            "total": "Total amount, tax included.",
            "currency": "ISO 4217 currency code.",
        },
        {
            "number": "Invoice number as printed.",
            "total": "Total amount, tax included.",
            "currency": "ISO 4217 currency code.",
            "due_date": "When it must be paid.",
            "vendor": "Who sent it.",
        },
    ],
    "support.schemas.Ticket": [
        {"summary": "One line.", "urgency": "low, normal or high."},
        {"summary": "One line.", "urgency": "low, normal or high.", "product": "Product named."},
        {"summary": "One sentence.", "urgency": "low, normal, high or critical.", "team": "Team."},
    ],
    "people.schemas.UserDetail": [
        {"name": "The person's name.", "age": "Age in years."},
        {"name": "The person's name.", "age": "Age in years.", "city": "Where they live."},
        {
            "name": "The person's name as written in the text.",
            "age": "Age in years.",
            "city": "Where they live.",
            "employer": "Who they work for.",
        },
    ],
}
SCHEMA_NAMES = list(SCHEMAS)

# Function f uses schema f % 3 (the module says which).
FUNCTIONS = [
    "orders.extract:extract_invoice",
    "support.triage:classify_ticket",
    "people.extract:extract_user",
    "orders.extract:extract_receipt",
    "support.triage:summarize_ticket",
    "people.extract:extract_contact",
    "orders.pdf:invoice_from_pdf",
    "support.email:ticket_from_email",
    "people.cv:extract_candidate",
    "orders.email:invoice_from_email",
    "support.chat:ticket_from_chat",
    "people.crm:extract_lead",
    "orders.scan:extract_scanned_invoice",
    "support.triage:route_ticket",
    "people.forms:extract_applicant",
    "orders.extract:extract_credit_note",
    "support.voice:ticket_from_call",
    "people.extract:extract_author",
    "orders.extract:extract_purchase_order",
    "support.triage:detect_urgency",
]
# Out of 10 entries: 4 on the small model, 2 on gpt-4o, one each on the others.
MODELS = [
    "gpt-4o-mini",
    "gpt-4o-mini",
    "gpt-4o-mini",
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-0",
]
PEOPLE = ["Jason", "Maria", "Chen", "Aisha", "Lukas", "Priya", "Tom", "Sofia", "Kenji", "Olu"]
CITIES = [
    "Toronto",
    "Berlin",
    "Lagos",
    "Osaka",
    "Lyon",
    "Austin",
    "Porto",
    "Pune",
    "Leeds",
    "Quito",
    "Tartu",
    "Perth",
]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
TOPICS = ["a late delivery", "a refund", "an upgrade", "a broken login", "their invoice"]
MISS_REASONS = [  # by (bucket - 80) for the 11 miss buckets
    "new_input",
    "new_input",
    "new_input",
    "new_input",
    "new_input",
    "schema_changed",
    "code_changed",
    "model_changed",
    "expired",
    "evicted",
    "invalidated",
]
ERRORS = [
    "RateLimitError: Error code: 429 - Rate limit reached for requests",
    "APITimeoutError: Request timed out.",
    "InstructorRetryException: 1 validation error: field required",
]
INVALIDATIONS = 7  # entries in buckets 85..91 point at one each


class BenchmarkError(RuntimeError):
    pass


# -- the SQL of each database --------------------------------------------------------


class Dialect:
    """What differs between PostgreSQL and SQLite in the load's SQL."""

    vendor = ""

    def series(self, count: int) -> tuple[str, str]:
        """(a WITH clause or "", the FROM item) yielding i = 1..count."""
        raise NotImplementedError

    def timestamp(self, epoch: str) -> str:
        raise NotImplementedError

    def hex16(self, number: str) -> str:
        raise NotImplementedError

    def json_object(self, *pairs: str) -> str:
        raise NotImplementedError


class Postgres(Dialect):
    vendor = "postgresql"

    def series(self, count: int) -> tuple[str, str]:
        return "", f"generate_series(1, {count}) AS s(i)"

    def timestamp(self, epoch: str) -> str:
        return f"to_timestamp({epoch})"

    def hex16(self, number: str) -> str:
        return f"lpad(to_hex({number}), 16, '0')"

    def json_object(self, *pairs: str) -> str:
        return f"jsonb_build_object({', '.join(pairs)})"


class Sqlite(Dialect):
    vendor = "sqlite"

    def series(self, count: int) -> tuple[str, str]:
        cte = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count})"
        return cte, "s"

    def timestamp(self, epoch: str) -> str:
        # Django stores aware datetimes in SQLite as naive UTC text.
        return f"strftime('%Y-%m-%d %H:%M:%f', {epoch}, 'unixepoch')"

    def hex16(self, number: str) -> str:
        return f"printf('%016x', {number})"

    def json_object(self, *pairs: str) -> str:
        return f"json_object({', '.join(pairs)})"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def hashed(expression: str) -> str:
    """A 32-bit multiplicative hash: deterministic 'random' numbers in plain SQL."""
    return f"((({expression}) * 2654435761) % 4294967296)"


def python_hashed(number: int) -> int:
    return (number * 2654435761) % 4294967296


def pick(index: str, values: Sequence[str | int]) -> str:
    """values[index] as a CASE expression (index is an SQL expression)."""
    whens = " ".join(
        f"WHEN {number} THEN {literal(v) if isinstance(v, str) else v}"
        for number, v in enumerate(values)
    )
    return f"(CASE {index} {whens} END)"


def bucket_of(expression: str, buckets: int) -> str:
    """0..buckets-1 from the hash's high bits."""
    return f"({hashed(expression)} / {4294967296 // buckets + 1})"


def python_bucket_of(number: int, buckets: int) -> int:
    return python_hashed(number) // (4294967296 // buckets + 1)


def created_epoch(identifier: str, start: float) -> str:
    """When entry `identifier` was stored, as Unix time: spread over the weeks."""
    fraction = f"CAST({hashed(identifier)} AS DOUBLE PRECISION) / 4294967296.0"
    return f"({start} + {WEEKS - 3600} * ({fraction}))"


# Entry status by bucket 0..99 of hash(3i + 1):
#  0..9 live, code changed since (stale)   10..14 live, older schema version (stale)
#  15..29 live with a TTL in the future    30..79 live                80..84 expired
#  85..91 invalidated                      92..99 replaced
def python_entry_bucket(identifier: int) -> int:
    return python_bucket_of(identifier * 3 + 1, 100)


@dataclass(frozen=True)
class Reference:
    """Ids of the small tables, as the big INSERTs need them."""

    current_version: list[int]  # per schema index: its newest version's pk
    previous_version: list[int]
    first_version: list[int]
    versions: dict[str, list[int]]  # schema name -> pks oldest first
    invalidations: list[int]
    current_code: list[str]  # per function
    previous_code: list[str]


def entries_sql(dialect: Dialect, entries: int, start: float, now: float, ref: Reference) -> str:
    from extractor.models import Entry

    with_clause, source = dialect.series(entries)
    schema_of = "(f % 3)"
    person = pick(bucket_of("i * 13 + 7", len(PEOPLE)), PEOPLE)
    city = pick(bucket_of("i * 17 + 9", len(CITIES)), CITIES)
    company = pick(bucket_of("i * 19 + 11", len(COMPANIES)), COMPANIES)
    topic = pick(bucket_of("i * 23 + 13", len(TOPICS)), TOPICS)
    text = (
        f"{person} || ' (' || age || ') from ' || {city} || ' wrote about ' || {topic}"
        f" || ' for ' || {company} || ', ref #' || i"
    )
    created = created_epoch("i", start)
    columns = {
        "key": " || ".join(
            [
                dialect.hex16("i"),
                dialect.hex16(hashed("i * 29 + 1")),
                dialect.hex16(hashed("i * 31 + 2")),
                dialect.hex16(hashed("i * 37 + 3")),
            ]
        ),
        "namespace": "''",
        "function": pick("f", FUNCTIONS),
        "schema_version_id": (
            f"(CASE WHEN b BETWEEN 10 AND 14 THEN {pick(schema_of, ref.previous_version)}"
            f" WHEN b BETWEEN 85 AND 91 THEN {pick(schema_of, ref.first_version)}"
            f" ELSE {pick(schema_of, ref.current_version)} END)"
        ),
        "code_fingerprint": (
            f"(CASE WHEN b < 10 THEN {pick('f', ref.previous_code)}"
            f" ELSE {pick('f', ref.current_code)} END)"
        ),
        "version": "''",
        "input_fingerprint": " || ".join(
            [
                dialect.hex16("i * 7 + 1"),
                dialect.hex16(hashed("i * 41 + 4")),
                dialect.hex16(hashed("i * 43 + 5")),
                dialect.hex16(hashed("i * 47 + 6")),
            ]
        ),
        "arguments": dialect.json_object("'text'", text, "'language'", "'en'"),
        "input_preview": text,
        "output": dialect.json_object(
            "'name'",
            person,
            "'age'",
            "age",
            "'city'",
            city,
            "'employer'",
            company,
            "'summary'",
            f"'Wrote about ' || {topic} || ' in ' || {city}",
        ),
        "llm_provider": "(CASE WHEN m >= 8 THEN 'anthropic' ELSE 'openai' END)",
        "llm_model": pick("m", MODELS),
        "prompt_tokens": "prompt",
        "completion_tokens": f"(20 + {hashed('i * 53 + 8')} % 400)",
        "cached_prompt_tokens": "(CASE WHEN b % 4 = 0 THEN prompt / 2 ELSE 0 END)",
        "latency_ms": f"(300 + {hashed('i * 59 + 9')} % 5000 + 0.5)",
        "created_at": dialect.timestamp(created),
        "expires_at": (
            f"(CASE WHEN b BETWEEN 80 AND 84 THEN {dialect.timestamp(f'({created} + {now}) / 2')}"
            f" WHEN b BETWEEN 15 AND 29 THEN {dialect.timestamp(f'{now} + {7 * DAY}')}"
            " ELSE NULL END)"
        ),
        "last_hit_at": "NULL",
        "hit_count": "0",
        "status": (
            "(CASE WHEN b < 85 THEN 'live' WHEN b < 92 THEN 'invalidated' ELSE 'replaced' END)"
        ),
        "status_changed_at": (
            f"(CASE WHEN b >= 85 THEN {dialect.timestamp(f'{created} + ({now} - {created}) * 0.7')}"
            " ELSE NULL END)"
        ),
        "invalidation_id": (
            f"(CASE WHEN b BETWEEN 85 AND 91 THEN {pick('b - 85', ref.invalidations)}"
            " ELSE NULL END)"
        ),
    }
    inner = (
        f"SELECT i, i % {len(FUNCTIONS)} AS f, {bucket_of('i * 3 + 1', 100)} AS b,"
        f" {bucket_of('i * 5 + 2', len(MODELS))} AS m, 18 + {hashed('i * 61 + 10')} % 60 AS age,"
        f" 150 + {hashed('i * 67 + 11')} % 1800 AS prompt FROM {source}"
    )
    return (
        f"INSERT INTO {table(Entry)} ({', '.join(quote(name) for name in columns)}) "
        f"{with_clause} SELECT {', '.join(columns.values())} FROM ({inner}) AS x"
    )


# Call outcome by bucket 0..99 of hash(5j + 2):
#  0..79 hit   80..90 miss   91..93 error   94..96 bypass   97..99 replay
def calls_sql(
    dialect: Dialect, calls: int, entries: int, hot: int, hot_calls: int, start: float, now: float
) -> str:
    from extractor.models import Call, Entry

    with_clause, source = dialect.series(calls)
    created = created_epoch("x.e", start)
    reached = "(x.o >= 80 AND x.o < 91 OR x.o >= 94)"  # misses, bypasses, replays
    # A miss stores its entry; any other call comes later, up to now.
    at = (
        f"(CASE WHEN x.o BETWEEN 80 AND 90 THEN {created}"
        f" ELSE {created} + ({now} - {created}) * x.u END)"
    )
    columns = {
        "entry_id": "(CASE WHEN x.o < 91 OR x.o >= 97 THEN x.e ELSE NULL END)",
        "key": "e.key",
        "function": "e.function",
        "schema_version_id": "e.schema_version_id",
        "outcome": (
            "(CASE WHEN x.o < 80 THEN 'hit' WHEN x.o < 91 THEN 'miss' WHEN x.o < 94 THEN 'error'"
            " WHEN x.o < 97 THEN 'bypass' ELSE 'replay' END)"
        ),
        "miss_reason": (
            f"(CASE WHEN x.o BETWEEN 80 AND 90 THEN {pick('x.o - 80', MISS_REASONS)} ELSE '' END)"
        ),
        "reason_detail": (
            "(CASE WHEN x.o = 85 THEN 'schema version changed since the value was stored'"
            " WHEN x.o = 86 THEN 'the function''s code changed' ELSE '' END)"
        ),
        "latency_ms": (
            "(CASE WHEN x.o < 80 THEN 0.2 + (x.r % 2000) / 1000.0"
            " WHEN x.o < 91 THEN e.latency_ms WHEN x.o < 94 THEN 1500.0 + x.r % 30000"
            " ELSE e.latency_ms * (0.8 + x.u * 0.4) END)"
        ),
        "llm_provider": "e.llm_provider",
        "llm_model": "e.llm_model",
        "prompt_tokens": f"(CASE WHEN {reached} THEN e.prompt_tokens ELSE 0 END)",
        "completion_tokens": f"(CASE WHEN {reached} THEN e.completion_tokens ELSE 0 END)",
        "cached_prompt_tokens": f"(CASE WHEN {reached} THEN e.cached_prompt_tokens ELSE 0 END)",
        "input_preview": "e.input_preview",
        "error": f"(CASE WHEN x.o BETWEEN 91 AND 93 THEN {pick('x.o - 91', ERRORS)} ELSE '' END)",
        "created_at": dialect.timestamp(at),
    }
    inner = (
        f"SELECT i AS j,"
        f" CASE WHEN i <= {hot_calls} THEN {hot}"
        f" ELSE 1 + {hashed('i * 3 + 1')} % {entries} END AS e,"
        f" CASE WHEN i = 1 THEN 80 WHEN i <= {hot_calls} THEN 0"
        f" ELSE {bucket_of('i * 5 + 2', 100)} END AS o,"
        f" CAST({hashed('i * 7 + 3')} AS DOUBLE PRECISION) / 4294967296.0 AS u,"
        f" {hashed('i * 11 + 4')} AS r FROM {source}"
    )
    return (
        f"INSERT INTO {table(Call)} ({', '.join(quote(name) for name in columns)}) "
        f"{with_clause} SELECT {', '.join(columns.values())} FROM ({inner}) AS x"
        f" JOIN {table(Entry)} AS e ON e.id = x.e"
    )


def hit_counts_sql() -> str:
    from extractor.models import Call, Entry

    entry = table(Entry)
    return (
        f"UPDATE {entry} SET hit_count = a.n, last_hit_at = a.last FROM"
        f" (SELECT entry_id, COUNT(*) AS n, MAX(created_at) AS last FROM {table(Call)}"
        "  WHERE outcome = 'hit' AND entry_id IS NOT NULL GROUP BY entry_id) AS a"
        f" WHERE {entry}.id = a.entry_id"
    )


def quote(name: str) -> str:
    from django.db import connection

    return str(connection.ops.quote_name(name))


def table(model: Any) -> str:
    return quote(model._meta.db_table)


# -- the database ------------------------------------------------------------------


@dataclass
class Database:
    kind: str  # postgres or sqlite
    url: str
    admin_url: str = ""  # PostgreSQL: where CREATE/DROP DATABASE run
    name: str = ""
    directory: Path | None = None

    @classmethod
    def create(cls, kind: str, postgres_url: str, data_dir: Path) -> Database:
        if kind == "sqlite":
            path = data_dir / "pages-at-scale.sqlite3"
            return cls(kind, f"sqlite:///{path}", directory=data_dir)
        import psycopg

        name = f"cachesite_bench_{secrets.token_hex(4)}"
        parts = urlsplit(postgres_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return cls(kind, urlunsplit(parts._replace(path=f"/{name}")), admin, name)

    @classmethod
    def existing(cls, kind: str, postgres_url: str, name: str) -> Database:
        """A database an earlier run kept: a name on the server, or an SQLite file."""
        if kind == "sqlite":
            path = Path(name).resolve()
            if not path.is_file():
                raise BenchmarkError(f"no SQLite file at {path}")
            return cls(kind, f"sqlite:///{path}", directory=path.parent)
        parts = urlsplit(postgres_url)
        admin = urlunsplit(parts._replace(path="/postgres"))
        return cls(kind, urlunsplit(parts._replace(path=f"/{name}")), admin, name)

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def setup_django(database_url: str, data_dir: Path) -> None:
    """As benchmarks/setup.py, but on the database given: the project's settings,
    a fresh data directory, migrations run."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "cachesite.settings"
    os.environ["CACHESITE_DATA_DIR"] = str(data_dir)
    os.environ["EXTRACTOR_RECORD_IN_BACKGROUND"] = "0"  # no calls are made; no writer thread
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_DEBUG"] = "0"
    # The test Client speaks plain http; production's redirect to https is the proxy's
    # business here, not the pages' time.
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    # The test Client's host name; setup_test_environment() would add it but also
    # instruments every template render, which would be timed too.
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # DEBUG off serves hashed static names from a manifest, as `make serve` does.
    call_command("collectstatic", interactive=False, verbosity=0)


# -- the load ----------------------------------------------------------------------


@dataclass
class Load:
    entries: int
    calls: int
    seconds: dict[str, float] = field(default_factory=dict)
    hot: int = 0
    staff_id: int = 0
    reference: Reference | None = None

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"  {name}...", end="", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        print(f" {self.seconds[name]:.1f} s", file=sys.stderr, flush=True)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def reference_rows(now: float) -> tuple[Reference, int]:
    """Schema versions, functions, invalidations and the staff user: a few rows, ORM."""
    import datetime as dt

    from django.contrib.auth import get_user_model

    from extractor.models import CachedFunction, Invalidation, SchemaVersion

    def moment(epoch: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, dt.UTC)

    user = get_user_model().objects.create_user("bench", is_staff=True)
    versions: dict[str, list[int]] = {}
    for position, (name, history) in enumerate(SCHEMAS.items()):
        rows = [
            SchemaVersion(
                name=name,
                number=number,
                fingerprint=hashlib.sha256(f"{name}:{number}".encode()).hexdigest(),
                json_schema=json_schema(name, fields),
                field_order=list(fields),
                first_seen_at=moment(now - WEEKS + DAY * (number * 5 + position)),
            )
            for number, fields in enumerate(history, start=1)
        ]
        versions[name] = [row.pk for row in SchemaVersion.objects.bulk_create(rows)]
    if any(pk is None for pks in versions.values() for pk in pks):
        versions = {
            name: list(
                SchemaVersion.objects.filter(name=name)
                .order_by("number")
                .values_list("pk", flat=True)
            )
            for name in SCHEMAS
        }
    current = [versions[name][-1] for name in SCHEMA_NAMES]
    previous = [versions[name][-2] for name in SCHEMA_NAMES]
    first = [versions[name][0] for name in SCHEMA_NAMES]
    code = [hashlib.sha256(f"{name}:code:2".encode()).hexdigest() for name in FUNCTIONS]
    old_code = [hashlib.sha256(f"{name}:code:1".encode()).hexdigest() for name in FUNCTIONS]
    CachedFunction.objects.bulk_create(
        CachedFunction(
            name=name,
            code_fingerprint=code[number],
            schema_version_id=current[number % 3],
            backend="disk:///srv/cachesite/cache",
            last_seen_at=moment(now - 60),
        )
        for number, name in enumerate(FUNCTIONS)
    )
    actions = [
        (Invalidation.Action.SCHEMA_VERSION, str(first[0])),
        (Invalidation.Action.FUNCTION, FUNCTIONS[4]),
        (Invalidation.Action.MODEL, "gpt-4o"),
        (Invalidation.Action.STALE, ""),
        (Invalidation.Action.SCHEMA_VERSION, str(first[1])),
        (Invalidation.Action.FUNCTION, FUNCTIONS[8]),
        (Invalidation.Action.ENTRY, "1"),
    ]
    Invalidation.objects.bulk_create(
        Invalidation(
            action=action,
            target=target,
            requested_by=user,
            created_at=moment(now - WEEKS + DAY * (3 * number + 2)),
            finished_at=moment(now - WEEKS + DAY * (3 * number + 2) + 40),
            status=Invalidation.Status.DONE,
            matched=1000 * (number + 1),
            removed=1000 * (number + 1),
        )
        for number, (action, target) in enumerate(actions)
    )
    invalidations = list(Invalidation.objects.order_by("pk").values_list("pk", flat=True))
    assert len(invalidations) == INVALIDATIONS
    reference = Reference(current, previous, first, versions, invalidations, code, old_code)
    return reference, user.pk


def json_schema(name: str, fields: dict[str, str]) -> dict[str, Any]:
    title = name.rsplit(".", 1)[-1]
    return {
        "title": title,
        "description": f"A {title.lower()} found in the text.",
        "type": "object",
        "properties": {
            field_name: {
                "title": field_name.replace("_", " ").title(),
                "type": "integer" if field_name == "age" else "string",
                "description": description,
            }
            for field_name, description in fields.items()
        },
        "required": list(fields),
    }


def hot_entry(entries: int) -> int:
    """A live, current, unexpired entry stored early: its page shows 10,000 calls."""
    for identifier in range(1, entries + 1):
        early = python_hashed(identifier) / 4294967296 < 0.05
        if early and 30 <= python_entry_bucket(identifier) < 80:
            return identifier
    raise BenchmarkError("no live entry to give the 10,000 calls to; use more entries")


def drop_indexes(connection: BaseDatabaseWrapper, tables: list[str]) -> list[str]:
    """Drop the tables' secondary indexes and return their definitions: rebuilt after
    the load, each is one sort instead of millions of random inserts. On SQLite the
    search index's triggers go too (one FTS insert per row otherwise); the FTS
    table is rebuilt from the entries after the load."""
    definitions: list[tuple[str, str, str]] = []
    with connection.cursor() as cursor:
        for name in tables:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
                    " JOIN pg_class i ON i.oid = x.indexrelid"
                    " JOIN pg_class t ON t.oid = x.indrelid"
                    " WHERE t.relname = %s"
                    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
                    [name],
                )
                definitions += [("INDEX", str(index), str(sql)) for index, sql in cursor.fetchall()]
            else:
                cursor.execute(
                    "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
                    " AND tbl_name = %s AND sql IS NOT NULL",
                    [name],
                )
                definitions += [
                    (str(kind).upper(), str(index), str(sql))
                    for kind, index, sql in cursor.fetchall()
                ]
        for kind, index, _sql in definitions:
            cursor.execute(f"DROP {kind} {quote(index)}")
    return [sql for _kind, _index, sql in definitions]


def fill(database: Database, entries: int, calls: int) -> Load:
    from django.db import connection, transaction

    from extractor.models import Call, Entry
    from extractor.recording.rollups import rebuild_from_calls
    from extractor.selectors.search import rebuild_sqlite_index

    dialect: Dialect = Postgres() if connection.vendor == "postgresql" else Sqlite()
    load = Load(entries, calls)
    now = time.time()
    start = now - WEEKS
    hot_calls = min(HOT_CALLS, calls // 2)
    with load.step("schemas, functions, invalidations, staff user (ORM, a few rows)"):
        load.reference, load.staff_id = reference_rows(now)
    load.hot = hot_entry(entries)
    tables = [Entry._meta.db_table, Call._meta.db_table]
    with connection.cursor() as cursor:
        if dialect.vendor == "postgresql":
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET work_mem = '256MB'")
            cursor.execute("SET maintenance_work_mem = '512MB'")
        indexes = drop_indexes(connection, tables)
        with load.step(f"{entries:,} entries (INSERT ... SELECT)"), transaction.atomic():
            cursor.execute(entries_sql(dialect, entries, start, now, load.reference))
        with load.step(f"{calls:,} calls (INSERT ... SELECT)"), transaction.atomic():
            cursor.execute(calls_sql(dialect, calls, entries, load.hot, hot_calls, start, now))
        with load.step("entries' hit counts and last hits from the calls"):
            with transaction.atomic():
                cursor.execute(hit_counts_sql())
            if dialect.vendor == "postgresql":
                # The UPDATE left a dead copy of every entry: compact before indexing.
                cursor.execute(f"VACUUM FULL {table(Entry)}")
        with load.step("counters (CallRollup) from the calls: one GROUP BY"):
            rebuild_from_calls()
        with load.step(f"{len(indexes)} secondary indexes rebuilt"):
            for sql in indexes:
                cursor.execute(sql)
            if dialect.vendor == "sqlite":
                rebuild_sqlite_index()
        with load.step("VACUUM ANALYZE" if dialect.vendor == "postgresql" else "ANALYZE"):
            cursor.execute("VACUUM ANALYZE" if dialect.vendor == "postgresql" else "ANALYZE")
    # The pages run on a fresh connection, with the server's settings, not the load's.
    connection.close()
    check_load(load)
    return load


def reload() -> Load:
    """What the pages need of a database an earlier run filled, read back from it."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from extractor.models import Call, CallRollup, Entry, Invalidation, SchemaVersion
    from extractor.recording.rollups import rebuild_from_calls

    load = Load(Entry.objects.count(), Call.objects.count())
    versions = {
        name: list(
            SchemaVersion.objects.filter(name=name).order_by("number").values_list("pk", flat=True)
        )
        for name in SCHEMAS
    }
    load.reference = Reference(
        current_version=[versions[name][-1] for name in SCHEMA_NAMES],
        previous_version=[versions[name][-2] for name in SCHEMA_NAMES],
        first_version=[versions[name][0] for name in SCHEMA_NAMES],
        versions=versions,
        invalidations=list(Invalidation.objects.order_by("pk").values_list("pk", flat=True)),
        current_code=[hashlib.sha256(f"{name}:code:2".encode()).hexdigest() for name in FUNCTIONS],
        previous_code=[hashlib.sha256(f"{name}:code:1".encode()).hexdigest() for name in FUNCTIONS],
    )
    load.hot = hot_entry(load.entries)
    load.staff_id = get_user_model().objects.get(username="bench").pk
    if not CallRollup.objects.exists():  # filled before the counters existed
        rebuild_from_calls()
    with connection.cursor() as cursor:
        # Statistics for indexes the migrations just added (the load's ANALYZE ran before).
        cursor.execute("ANALYZE")
    check_load(load)
    return load


def check_load(load: Load) -> None:
    from extractor.models import Call, Entry

    entries, calls = Entry.objects.count(), Call.objects.count()
    if (entries, calls) != (load.entries, load.calls):
        raise BenchmarkError(f"loaded {entries:,} entries and {calls:,} calls, not as asked")
    hot_calls = Call.objects.filter(entry_id=load.hot).count()
    print(f"  entry #{load.hot} has {hot_calls:,} calls", file=sys.stderr)


# -- the pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    label: str
    url: str


def pages(load: Load) -> list[Page]:
    import datetime as dt

    from django.urls import reverse

    ref = load.reference
    assert ref is not None
    function = FUNCTIONS[0]
    model = "gpt-4o"
    schema = SCHEMA_NAMES[0]
    version = ref.current_version[0]
    old, new = ref.versions[schema][0], ref.versions[schema][-1]
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).replace(minute=0)
    window = {
        "since": day.strftime("%Y-%m-%dT%H:%M"),
        "until": (day + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    }

    def url(name: str, query: dict[str, Any] | None = None, *args: Any) -> str:
        path = reverse(f"extractor:{name}", args=args)
        return f"{path}?{urlencode(query)}" if query else path

    result = [
        Page(f"overview {label}", url("overview", {"days": days}))
        for label, days in [("24h", "1"), ("7d", "7"), ("30d", "30"), ("all", "all")]
    ]
    result += [
        Page("entries", url("entries")),
        Page("entries function", url("entries", {"function": function})),
        Page("entries schema", url("entries", {"schema": schema})),
        Page("entries schema version", url("entries", {"schema_version": version})),
        Page("entries model", url("entries", {"model": model})),
    ]
    result += [
        Page(f"entries state={state}", url("entries", {"state": state}))
        for state in ["live", "stale", "expired", "invalidated", "replaced", "all"]
    ]
    result += [
        Page(f"entries search {SEARCH_TERM}", url("entries", {"q": SEARCH_TERM})),
        # One entry's text: found through the index, not by reading every entry.
        Page("entries search rare", url("entries", {"q": rare_search_term(load)})),
    ]
    result += [
        Page(f"entries sort={sort}", url("entries", {"sort": sort}))
        for sort in ["-last_hit_at", "-hit_count", "-created_at", "created_at"]
    ]
    result += [
        Page(f"entries page {DEEP_PAGE}", url("entries", {"after": deep_cursor("entries")})),
        Page(f"entry #{load.hot} (10,000 calls)", url("entry", None, load.hot)),
        Page("calls", url("calls")),
        Page(f"calls page {DEEP_PAGE}", url("calls", {"after": deep_cursor("calls")})),
    ]
    result += [
        Page(f"calls outcome={outcome}", url("calls", {"outcome": outcome}))
        for outcome in ["hit", "miss", "error"]
    ]
    result += [
        Page("calls function", url("calls", {"function": function})),
        Page("calls model", url("calls", {"model": model})),
        Page("calls one day", url("calls", window)),
        Page("schemas", url("schemas")),
        Page("schema diff v1 -> v4", url("schemas", {"name": schema, "a": old, "b": new})),
    ]
    scopes = [
        ("entry", str(load.hot)),
        ("schema_version", str(version)),
        ("function", function),
        ("model", model),
        ("stale", ""),
    ]
    result += [
        Page(
            f"invalidate confirm {action}", url("invalidate", {"action": action, "target": target})
        )
        for action, target in scopes
    ]
    result += [Page("invalidations", url("invalidations"))]
    return result


def rare_search_term(load: Load) -> str:
    """Text of one entry's input: "ref #" and the last entry's number (no other
    number starts with it)."""
    return f"ref #{load.entries}"


def deep_cursor(page: str) -> str:
    """The `after` cursor of page DEEP_PAGE of the unfiltered list (found once with
    an OFFSET, untimed; the last page of a smaller list): the pages go by cursor,
    never by OFFSET."""
    from django.db.models import Model, QuerySet

    from extractor.selectors import calls, entries, keyset
    from extractor.views.calls import PER_PAGE as CALLS_PER_PAGE
    from extractor.views.entries import PER_PAGE as ENTRIES_PER_PAGE

    def before_page(rows: QuerySet[Any], per_page: int) -> Model:
        offset = (DEEP_PAGE - 1) * per_page - 1
        found: list[Model] = list(rows[offset : offset + 1])
        if found:
            return found[0]
        last_page_start: Model = rows[max(0, ((rows.count() - 1) // per_page) * per_page - 1)]
        return last_page_start

    if page == "entries":
        filters = entries.EntryFilters()
        entry = before_page(entries.entry_list(filters), ENTRIES_PER_PAGE)
        return keyset.encode(entries.entry_ordering(filters.sort), entry)
    call = before_page(calls.call_list(calls.CallFilters()), CALLS_PER_PAGE)
    return keyset.encode(calls.NEWEST_FIRST, call)


@dataclass
class Timing:
    page: Page
    queries: int = 0
    samples_ms: list[float] = field(default_factory=list)
    error: str = ""

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def ask(client: Client, page: Page) -> tuple[float, str]:
    """(milliseconds, error or "")."""
    started = time.perf_counter()
    try:
        response = client.get(page.url)
    except Exception as exc:
        traceback.print_exc()
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    taken = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return taken, f"HTTP {response.status_code}"
    return taken, ""


def time_pages(load: Load, repeat: int) -> list[Timing]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(pk=load.staff_id))
    timings = [Timing(page) for page in pages(load)]
    print(f"  first pass: status and queries of {len(timings)} pages", file=sys.stderr)
    for timing in timings:
        with CaptureQueriesContext(connection) as queries:
            taken, timing.error = ask(client, timing.page)
        timing.queries = len(queries)
        mark = timing.error or f"{taken:.0f} ms"
        print(f"    {timing.page.label}: {mark}", file=sys.stderr, flush=True)
    live = [timing for timing in timings if not timing.error]
    started = time.perf_counter()
    for number in range(repeat):
        for timing in live:
            taken, error = ask(client, timing.page)
            if error:
                timing.error = error
            else:
                timing.samples_ms.append(taken)
        elapsed = time.perf_counter() - started
        print(f"  round {number + 1}/{repeat}, {elapsed:.0f} s", file=sys.stderr, flush=True)
    return timings


# -- the report --------------------------------------------------------------------


def database_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def report(kind: str, load: Load, timings: list[Timing], repeat: int, loads: list[str]) -> int:
    target = TARGETS_MS[kind]
    entries, calls = TARGET_SCALE[kind]
    at_scale = (load.entries, load.calls) == (entries, calls)
    print()
    steps = ", ".join(
        f"{name.split(' (')[0]} {seconds:.1f} s" for name, seconds in load.seconds.items()
    )
    loaded = f"loaded in {load.total_seconds:.0f} s ({steps})" if steps else "reused (--reuse)"
    print(f"{database_version()}: {load.entries:,} entries, {load.calls:,} calls, {loaded}")
    print(
        f"{repeat} timed requests per page, round-robin after one untimed; load average "
        f"(1, 5, 15 min) at the start {loads[0]}, when timing began {loads[1]}, at the end "
        f"{loads[2]}; {os.cpu_count()} cores"
    )
    if not at_scale:
        print(f"(the target is for {entries:,} entries / {calls:,} calls; this run is smaller)")
    width = max(len(timing.page.label) for timing in timings)
    print()
    print(f"{'page':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'queries':>7}  {'target':>7}  result")
    errors = 0
    for timing in timings:
        if timing.error or not timing.samples_ms:
            errors += 1
            print(
                f"{timing.page.label:<{width}}  {'':>8}  {'':>8}  {timing.queries:>7}  "
                f"{target:>5.0f}ms  ERROR {timing.error} ({timing.page.url})"
            )
            continue
        p50 = statistics.median(timing.samples_ms)
        p95 = timing.percentile(0.95)
        result = "met" if p95 <= target else "MISSED"
        print(
            f"{timing.page.label:<{width}}  {p50:>8.1f}  {p95:>8.1f}  {timing.queries:>7}  "
            f"{target:>5.0f}ms  {result}"
        )
    missed = sum(1 for t in timings if not t.error and t.samples_ms and t.percentile(0.95) > target)
    print()
    print(f"{len(timings)} pages: {missed} over the target, {errors} errors")
    return 1 if errors else 0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--entries", type=int, help="default: the target scale of the database")
    parser.add_argument("--calls", type=int, help="default: the target scale of the database")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} / {QUICK[1]:,}")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a server to create the benchmark's own database on",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="time the pages of a database an earlier --keep run filled (a PostgreSQL "
        "database name on the --postgres-url server, or an SQLite file): migrations are "
        "applied, nothing is loaded, nothing dropped",
    )
    arguments = parser.parse_args(argv)
    default_entries, default_calls = QUICK if arguments.quick else TARGET_SCALE[arguments.database]
    arguments.entries = arguments.entries or default_entries
    arguments.calls = arguments.calls or default_calls
    if arguments.calls < 2 or arguments.entries < 100:
        parser.error("use at least 100 entries and 2 calls")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    loads = [load_average()]
    data_dir = Path(tempfile.mkdtemp(prefix="pages-at-scale-"))
    with contextlib.ExitStack() as stack:
        if not arguments.keep:
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        if arguments.reuse:
            database = Database.existing(
                arguments.database, arguments.postgres_url, arguments.reuse
            )
        else:
            database = Database.create(arguments.database, arguments.postgres_url, data_dir)
        if arguments.keep or arguments.reuse:
            print(f"keeping the database: {database.url}", file=sys.stderr)
        else:
            stack.callback(database.drop)
        stack.callback(close_connections)
        setup_django(database.url, data_dir)
        if arguments.reuse:
            print(f"reusing {database.url}", file=sys.stderr)
            load = reload()
        else:
            print(
                f"loading {arguments.entries:,} entries, {arguments.calls:,} calls", file=sys.stderr
            )
            load = fill(database, arguments.entries, arguments.calls)
        loads.append(load_average())
        timings = time_pages(load, arguments.repeat)
        loads.append(load_average())
        return report(arguments.database, load, timings, arguments.repeat, loads)


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
