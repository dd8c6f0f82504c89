"""The overview: hit rate, what the cache saved, what provider prompt caching saved.

Read from the counters (CallRollup), never from the call log: they count every
call, itemised or not, and outlive the call log's retention.

Money is an estimate from settings.EXTRACTOR_PRICES (USD per million tokens:
input, cached input, 5-minute cache write, 1-hour cache write, output). Two
layers save money, and they are reported apart, never added together:
- the response cache (this site's hits): a hit saved what its entry's LLM call
  cost, at the tokens that call used (cache reads and writes priced as billed);
- the provider's prompt cache, on the calls that did reach the LLM: reads billed
  at the cached-input price instead of the input price, minus what writing the
  cache cost above the input price (prompt_cache_saving).
They never count the same token: hits carry no tokens of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from extractor.models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, Call, CallRollup, DroppedRecords
from extractor.selectors.display_names import display_names

logger = logging.getLogger(__name__)

MILLION = 1_000_000
NO_MODEL = "(no model recorded)"
BucketSize = Literal["hour", "day"]
# Windows up to this many days are drawn per hour, longer ones per day.
HOURLY_UP_TO_DAYS = 2


def _duration(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


# One per LATENCY_COLUMNS bucket: its upper bound, the open top bucket last.
LATENCY_LABELS = (
    *(f"≤ {_duration(bound)}" for bound in LATENCY_BOUNDS_MS),
    f"> {_duration(LATENCY_BOUNDS_MS[-1])}",
)

# A provider's dated snapshot of a priced model: "gpt-4o-mini-2024-07-18",
# "claude-3-5-haiku-20241022".
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-?\d{2}-?\d{2}")


# A 3-number price (input, cached input, output) has its cache writes priced at
# Anthropic's multipliers of the input price: 1.25x for 5 minutes, 2x for 1 hour.
WRITE_5M_TIMES_INPUT = 1.25
WRITE_1H_TIMES_INPUT = 2.0


@dataclass(frozen=True)
class Price:
    """USD per million tokens, in the order of an EXTRACTOR_PRICES entry."""

    input: float
    cached_input: float
    cache_write: float  # written with the 5-minute TTL (Anthropic's default)
    cache_write_1h: float
    output: float


def price_of(model: str) -> Price | None:
    """The price of `model`, or of the model it is a dated snapshot of; None if unknown.

    "provider/model" is priced by its model part unless the full name has a price
    of its own. Only a date suffix is matched ("-2024-07-18", Anthropic's
    "-20251001"): "gpt-4.1-nano" is not priced as "gpt-4.1" (it costs a
    twentieth of it), it is reported as unpriced instead.
    """
    if not model:
        return None
    prices = settings.EXTRACTOR_PRICES
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    for name in names:
        raw = _raw_price(prices, name)
        if raw is not None:
            return _parsed(name, raw)
    return None


def _raw_price(prices: Mapping[str, Any], model: str) -> Any:
    raw = prices.get(model)
    if raw is not None:
        return raw
    model = model.removesuffix("-latest")
    for name, candidate in prices.items():
        base = name.removesuffix("-latest")
        rest = model[len(base) :]
        if model.startswith(base) and (not rest or _SNAPSHOT_SUFFIX.fullmatch(rest)):
            return candidate
    return None


def _parsed(model: str, raw: Any) -> Price | None:
    try:
        values = [float(value) for value in raw]
    except (TypeError, ValueError):
        values = []
    if len(values) == 3:
        input_price, cached_price, output_price = values
        return Price(
            input_price,
            cached_price,
            input_price * WRITE_5M_TIMES_INPUT,
            input_price * WRITE_1H_TIMES_INPUT,
            output_price,
        )
    if len(values) == 5:
        return Price(*values)
    # Reported as unpriced on the page rather than a 500 on every visit.
    logger.warning(
        "EXTRACTOR_PRICES[%r] is neither 5 numbers (input, cached input, 5-minute write,"
        " 1-hour write, output) nor 3 (input, cached input, output): %r",
        model,
        raw,
    )
    return None


def call_cost(
    model: str, prompt: int, cached: int, completion: int, *, write: int = 0, write_1h: int = 0
) -> float | None:
    """USD for one call's usage, counted as Usage counts it: `prompt` holds every input
    token, `cached` of them read from the provider's prompt cache and `write` written
    to it (`write_1h` of those with the 1-hour TTL)."""
    price = price_of(model)
    if price is None:
        return None
    write_1h = min(write_1h, write)
    uncached = max(prompt - cached - write, 0)
    return (
        uncached * price.input
        + cached * price.cached_input
        + (write - write_1h) * price.cache_write
        + write_1h * price.cache_write_1h
        + completion * price.output
    ) / MILLION


def prompt_cache_saving(model: str, *, read: int, write: int, write_1h: int) -> float | None:
    """USD the provider's prompt cache saved on these tokens; None when `model` is unpriced.

    Reads cost the cached-input price instead of the input price; writes cost more
    than input (Anthropic: 1.25x for 5 minutes, 2x for 1 hour), and that premium
    is taken off. Negative when the cache was written and not read enough to pay
    for it. `write` counts every written token, `write_1h` the 1-hour part of them.
    """
    price = price_of(model)
    if price is None:
        return None
    write_1h = min(write_1h, write)
    read_saving = read * (price.input - price.cached_input)
    write_premium = (write - write_1h) * (price.cache_write - price.input) + write_1h * (
        price.cache_write_1h - price.input
    )
    return (read_saving - write_premium) / MILLION


@dataclass
class Savings:
    """The figures for one schema, or for all of them."""

    label: str
    name: str = ""  # the schema's dotted path; empty for the total
    calls: int = 0  # every outcome, bypass and replay included
    hits: int = 0
    misses: int = 0
    errors: int = 0
    # Hits whose entry row is gone or was never recorded: counted in the hit
    # rate, but what they saved is unknown.
    hits_without_entry: int = 0
    # Hits that were misses waiting for another caller's computation of the same
    # key (single-flight): LLM calls that a stampede would otherwise have made.
    coalesced: int = 0
    latency_saved_ms: float = 0.0
    tokens_saved: int = 0
    cost_saved: float = 0.0
    # Provider prompt caching, on the calls that did reach the LLM: tokens read from
    # and written to its cache, and what it saved net of the write premium.
    reached_llm: int = 0
    provider_cached_tokens: int = 0
    provider_write_tokens: int = 0
    provider_write_1h_tokens: int = 0
    provider_cost_saved: float = 0.0  # net: the write premium below taken off
    provider_write_premium: float = 0.0  # what writing the cache cost above the input price
    unpriced_models: set[str] = field(default_factory=set)
    # How long hits (answered from the cache) and misses (which waited for the LLM)
    # took, one count per LATENCY_COLUMNS bucket.
    hit_latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))
    miss_latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))

    @property
    def hit_rate(self) -> float | None:
        served = self.hits + self.misses
        return self.hits / served if served else None

    @property
    def hit_p50(self) -> LatencyPercentile | None:
        return latency_percentile(self.hit_latency, 50)

    @property
    def hit_p95(self) -> LatencyPercentile | None:
        return latency_percentile(self.hit_latency, 95)

    @property
    def miss_p50(self) -> LatencyPercentile | None:
        return latency_percentile(self.miss_latency, 50)

    @property
    def miss_p95(self) -> LatencyPercentile | None:
        return latency_percentile(self.miss_latency, 95)

    def add(self, row: Mapping[str, Any]) -> None:
        """One summed row of the counters, of any outcome."""
        if row["outcome"] == Call.Outcome.HIT:
            self.add_hits(row)
        else:
            self.add_reached(row)

    def add_hits(self, row: Mapping[str, Any]) -> None:
        """Hits of entries of one model: each saved its entry's tokens and latency."""
        calls, without_entry = row["calls"], row["without_entry"]
        self.calls += calls
        self.hits += calls
        self.hits_without_entry += without_entry
        self.coalesced += row.get("coalesced") or 0
        _add_slots(self.hit_latency, row)
        if calls == without_entry:
            return
        model = row["llm_model"]
        prompt, cached, completion = row["prompt"], row["cached"], row["completion"]
        self.latency_saved_ms += max(row["original_ms"] - row["latency_ms"], 0)
        self.tokens_saved += prompt + completion
        cost = call_cost(
            model,
            prompt,
            cached,
            completion,
            write=row.get("write") or 0,
            write_1h=row.get("write_1h") or 0,
        )
        if cost is None:
            self.unpriced_models.add(model or NO_MODEL)
        else:
            self.cost_saved += cost

    def add_reached(self, row: Mapping[str, Any]) -> None:
        """Calls of one model and outcome that reached the LLM, and what its prompt cache saved."""
        model, cached, calls = row["llm_model"], row["cached"], row["calls"]
        write, write_1h = row.get("write") or 0, row.get("write_1h") or 0
        self.calls += calls
        self.reached_llm += calls
        if row["outcome"] == Call.Outcome.MISS:
            self.misses += calls
            _add_slots(self.miss_latency, row)
        elif row["outcome"] == Call.Outcome.ERROR:
            self.errors += calls
        self.provider_cached_tokens += cached
        self.provider_write_tokens += write
        self.provider_write_1h_tokens += write_1h
        saving = prompt_cache_saving(model, read=cached, write=write, write_1h=write_1h)
        if saving is not None:
            self.provider_cost_saved += saving
            premium = prompt_cache_saving(model, read=0, write=write, write_1h=write_1h)
            self.provider_write_premium -= premium or 0.0
        elif cached or write:
            self.unpriced_models.add(model or NO_MODEL)


def _add_slots(slots: list[int], row: Mapping[str, Any]) -> None:
    for index, column in enumerate(LATENCY_COLUMNS):
        slots[index] += row[column] or 0


class LatencyPercentile(NamedTuple):
    """A percentile read from the counters' latency buckets: the bucket it falls in."""

    bucket: int  # index into LATENCY_COLUMNS
    label: str  # the bucket's upper bound, "≤ 1 s"; "> 30 s" for the open top bucket


def latency_percentile(counts: Sequence[int], percent: int) -> LatencyPercentile | None:
    """The bucket holding the `percent`th percentile of calls counted per LATENCY_COLUMNS
    bucket (nearest rank), or None without calls.

    Reported as the bucket's upper bound rather than interpolated: the buckets are up
    to ten times wide and the counters keep nothing of where calls fell inside one, so
    "p95 ≤ 1 s" is what is known; a figure like "p95 = 640 ms" would be invented.
    """
    if len(counts) != len(LATENCY_COLUMNS):
        raise ValueError(f"expected {len(LATENCY_COLUMNS)} bucket counts, got {len(counts)}")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    total = sum(counts)
    if total <= 0:
        return None
    rank = -(-percent * total // 100)  # the ceiling of percent% of the calls
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return LatencyPercentile(index, LATENCY_LABELS[index])
    raise AssertionError("unreachable: the last bucket holds the total")


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime  # aware, in the current time zone
    hits: int
    misses: int
    errors: int = 0

    @property
    def total(self) -> int:
        return self.hits + self.misses + self.errors


@dataclass
class LatencyBucket:
    """How many hits, and calls that reached the LLM, took up to `label`."""

    label: str
    hits: int = 0
    reached: int = 0


def _latency_buckets() -> list[LatencyBucket]:
    return [LatencyBucket(label) for label in LATENCY_LABELS]


@dataclass
class Overview:
    days: int | None  # the last `days` days; None for all time or a range of dates
    since: dt.datetime | None  # None: all time
    until: dt.datetime  # the end of the window, at most now
    total: Savings
    by_schema: list[Savings]
    series: list[Bucket]  # every bucket of the window, empty ones included
    bucket: BucketSize
    has_calls: bool  # any call at all, in the window or not
    itemised: int = 0  # of total.calls, those with a row in the call log
    dropped: int = 0  # call records lost in the window (DroppedRecords)
    latency: list[LatencyBucket] = field(default_factory=list)
    by_function: list[Savings] = field(default_factory=list)
    by_model: list[Savings] = field(default_factory=list)
    # A range of whole local days, both included; None for the last `days` days.
    dates: tuple[dt.date, dt.date] | None = None
    up_to_now: bool = True  # False for a range of dates that ended before today

    @property
    def starts_at(self) -> dt.datetime | None:
        """Where the counters read begin: the start of the hour holding `since`."""
        return _utc_hour(self.since) if self.since is not None else None

    @property
    def has_latency(self) -> bool:
        return any(bucket.hits or bucket.reached for bucket in self.latency)

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(self.total.unpriced_models)

    @property
    def counted_only(self) -> int:
        return self.total.calls - self.itemised


def overview(*, days: int | None, now: dt.datetime | None = None) -> Overview:
    """The last `days` days up to `now` (None: all calls), from the counters.

    The window starts at the hour: counters are kept per hour, and per local day
    for the full days of a long window (a handful of rows where the call log
    has millions).
    """
    # In UTC, so "days" are 24-hour spans even across a DST change.
    now = (now or timezone.now()).astimezone(dt.UTC)
    since = now - dt.timedelta(days=days) if days else None
    bucket: BucketSize = "hour" if days is not None and days <= HOURLY_UP_TO_DAYS else "day"
    return _overview(since=since, until=now, bucket=bucket, days=days)


def overview_of_dates(*, first: dt.date, last: dt.date, now: dt.datetime | None = None) -> Overview:
    """Whole days `first` to `last`, both included, in the current time zone; up to
    `now` when `last` is today or later."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    since = _local_midnight(first)
    # `until` is inclusive (the counters' rows are filed by their start): the last
    # instant before the next day, so that day's first hour is left out.
    end = _local_midnight(last + dt.timedelta(days=1)) - dt.timedelta(microseconds=1)
    days = (last - first).days + 1
    bucket: BucketSize = "hour" if days <= HOURLY_UP_TO_DAYS else "day"
    return _overview(
        since=since,
        until=min(end, now),
        bucket=bucket,
        days=None,
        dates=(first, last),
        up_to_now=now < end,
    )


def _overview(
    *,
    since: dt.datetime | None,
    until: dt.datetime,
    bucket: BucketSize,
    days: int | None,
    dates: tuple[dt.date, dt.date] | None = None,
    up_to_now: bool = True,
) -> Overview:
    rollups = counters_in_window(since, until, whole_days=bucket == "day")
    names = display_names()
    # One GROUP BY per breakdown; each keeps the model, which prices the tokens.
    per_model = list(_sums(rollups, "llm_model"))
    total = Savings("All")
    latency = _latency_buckets()
    itemised = 0
    for row in per_model:
        total.add(row)
        itemised += row["itemised"]
        hit = row["outcome"] == Call.Outcome.HIT
        for slot, column in zip(latency, LATENCY_COLUMNS, strict=True):
            if hit:
                slot.hits += row[column]
            else:
                slot.reached += row[column]
    dropped = DroppedRecords.objects.filter(at__lte=until)
    if since is not None:
        dropped = dropped.filter(at__gte=since)
    return Overview(
        days=days,
        since=since,
        until=until,
        total=total,
        by_schema=_breakdown(
            _sums(rollups, "schema_version__name", "llm_model"),
            "schema_version__name",
            names.schema,
        ),
        by_function=_breakdown(_sums(rollups, "function", "llm_model"), "function", names.function),
        by_model=_breakdown(per_model, "llm_model", lambda name: name or NO_MODEL),
        series=_series(rollups, bucket, since=since, until=until),
        bucket=bucket,
        has_calls=total.calls > 0 or CallRollup.objects.exists(),
        itemised=itemised,
        dropped=dropped.aggregate(total=Sum("count"))["total"] or 0,
        latency=latency,
        dates=dates,
        up_to_now=up_to_now,
    )


def _sums(rollups: QuerySet[CallRollup], *keys: str) -> QuerySet[CallRollup, dict[str, Any]]:
    """The counters of the window summed per `keys` and outcome."""
    sums: QuerySet[CallRollup, dict[str, Any]] = (
        rollups.values(*keys, "outcome")
        .annotate(
            calls=Sum("calls"),
            itemised=Sum("itemised"),
            without_entry=Sum("without_entry"),
            coalesced=Sum("coalesced"),
            latency_ms=Sum("latency_ms_sum"),
            original_ms=Sum("original_latency_ms_sum"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cached=Sum("cached_prompt_tokens"),
            write=Sum("cache_write_tokens"),
            write_1h=Sum("cache_write_1h_tokens"),
            **{column: Sum(column) for column in LATENCY_COLUMNS},
        )
        .order_by()
    )
    return sums


def _breakdown(
    rows: Iterable[Mapping[str, Any]], key: str, label: Callable[[str], str]
) -> list[Savings]:
    """One Savings per value of `key`, busiest first."""
    per_name: dict[str, Savings] = {}
    for row in rows:
        name = row[key]
        if name not in per_name:
            per_name[name] = Savings(label(name), name)
        per_name[name].add(row)
    return sorted(per_name.values(), key=lambda s: (-(s.hits + s.misses), -s.calls, s.label))


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def counters_in_window(
    since: dt.datetime | None, until: dt.datetime, *, whole_days: bool
) -> QuerySet[CallRollup]:
    """The counter rows covering [since, until]: with `whole_days` the hours of the
    partial days at either end and the local days in between, else every hour."""
    # "Before the next hour" rather than "at or before `until`": SQLite compares the
    # stored text, and "14:00:00.000000" sorts after a bound written "14:00:00", so
    # the hour starting exactly at `until` would be lost there.
    before = _utc_hour(until) + dt.timedelta(hours=1)
    if not whole_days:
        hourly = CallRollup.objects.filter(span=CallRollup.Span.HOUR, bucket_start__lt=before)
        return hourly.filter(bucket_start__gte=_utc_hour(since)) if since else hourly
    last_day = bucket_start(until, "day")
    hours = Q(span=CallRollup.Span.HOUR, bucket_start__lt=before, bucket_start__gte=last_day)
    days = Q(span=CallRollup.Span.DAY, bucket_start__lt=last_day)
    if since is not None:
        first_hour = _utc_hour(since)
        first_day = bucket_start(since, "day")
        if first_day < first_hour:
            first_day = _next_day(first_day)
        first_day = min(first_day, last_day)
        hours |= Q(
            span=CallRollup.Span.HOUR, bucket_start__gte=first_hour, bucket_start__lt=first_day
        )
        days &= Q(bucket_start__gte=first_day)
    return CallRollup.objects.filter(hours | days)


def _utc_hour(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour holding `moment`: the counters' hours are UTC hours
    (in a zone with a half-hour offset a local hour would straddle two of them)."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _next_day(day_start: dt.datetime) -> dt.datetime:
    return _local_midnight(timezone.localtime(day_start).date() + dt.timedelta(days=1))


def _series(
    rollups: QuerySet[CallRollup],
    bucket: BucketSize,
    *,
    since: dt.datetime | None,
    until: dt.datetime,
) -> list[Bucket]:
    rows = (
        rollups.filter(outcome__in=[Call.Outcome.HIT, Call.Outcome.MISS, Call.Outcome.ERROR])
        .values("span", "bucket_start")
        .annotate(
            hits=Sum("calls", filter=Q(outcome=Call.Outcome.HIT)),
            misses=Sum("calls", filter=Q(outcome=Call.Outcome.MISS)),
            errors=Sum("calls", filter=Q(outcome=Call.Outcome.ERROR)),
        )
        .order_by()
    )
    # Keyed by instant: aware datetimes sharing a tzinfo compare by wall clock, which
    # would make the repeated hour of a DST change one key.
    counts: dict[dt.datetime, tuple[int, int, int]] = {}
    for row in rows:
        start = bucket_start(row["bucket_start"], bucket).astimezone(dt.UTC)
        hits, misses, errors = counts.get(start, (0, 0, 0))
        counts[start] = (
            hits + (row["hits"] or 0),
            misses + (row["misses"] or 0),
            errors + (row["errors"] or 0),
        )
    first = since if since is not None else min(counts, default=None)
    if first is None:
        return []
    return [
        Bucket(start, *counts.get(start.astimezone(dt.UTC), (0, 0, 0)))
        for start in _bucket_starts(first, until, bucket)
    ]


def bucket_start(moment: dt.datetime, bucket: BucketSize) -> dt.datetime:
    """The start of the hour or day holding `moment`, in the current time zone."""
    local = timezone.localtime(moment)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return _local_midnight(local.date())


def _bucket_starts(
    first: dt.datetime, last: dt.datetime, bucket: BucketSize
) -> Iterator[dt.datetime]:
    start, end = bucket_start(first, bucket), bucket_start(last, bucket).astimezone(dt.UTC)
    while start.astimezone(dt.UTC) <= end:
        yield start
        if bucket == "hour":
            # Stepped in UTC: wall-clock arithmetic would repeat or skip an hour at DST.
            start = timezone.localtime(start.astimezone(dt.UTC) + dt.timedelta(hours=1))
        else:
            start = _next_day(start)
