"""The overview: hit rate, what the cache saved, what provider prompt caching saved.

Read from the counters (CallRollup), never from the call log: they count every
call, itemised or not, and outlive the call log's retention.

Money is an estimate from settings.EXTRACTOR_PRICES (USD per million tokens:
input, cached input, output). A hit saved what its entry's LLM call cost, at
the tokens that call used; provider prompt caching saved, on every call that
did reach the LLM, the difference between the input and the cached-input
price on its cached prompt tokens. The two never count the same token: hits
carry no tokens of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from extractor.models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, Call, CallRollup, DroppedRecords

logger = logging.getLogger(__name__)

MILLION = 1_000_000
NO_MODEL = "(no model recorded)"
BucketSize = Literal["hour", "day"]

# A provider's dated snapshot of a priced model: "gpt-4o-mini-2024-07-18",
# "claude-3-5-haiku-20241022".
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-?\d{2}-?\d{2}")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


def price_of(model: str) -> Price | None:
    """The price of `model`, or of the model it is a dated snapshot of; None if unknown.

    Only a date suffix is matched: "gpt-4.1-nano" is not priced as "gpt-4.1"
    (it costs a twentieth of it), it is reported as unpriced instead.
    """
    if not model:
        return None
    prices = settings.EXTRACTOR_PRICES
    raw = prices.get(model)
    if raw is None:
        for name, candidate in prices.items():
            base = name.removesuffix("-latest")
            if model.startswith(base) and _SNAPSHOT_SUFFIX.fullmatch(model[len(base) :]):
                raw = candidate
                break
    if raw is None:
        return None
    try:
        input_price, cached_price, output_price = (float(value) for value in raw)
    except (TypeError, ValueError):
        # Reported as unpriced on the page rather than a 500 on every visit.
        logger.warning("EXTRACTOR_PRICES[%r] is not three numbers: %r", model, raw)
        return None
    return Price(input_price, cached_price, output_price)


def call_cost(model: str, prompt: int, cached: int, completion: int) -> float | None:
    """USD for one call's usage; `cached` is the part of `prompt` the provider had cached."""
    price = price_of(model)
    if price is None:
        return None
    uncached = max(prompt - cached, 0)
    return (
        uncached * price.input + cached * price.cached_input + completion * price.output
    ) / MILLION


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
    latency_saved_ms: float = 0.0
    tokens_saved: int = 0
    cost_saved: float = 0.0
    # Provider prompt caching, on the calls that did reach the LLM.
    reached_llm: int = 0
    provider_cached_tokens: int = 0
    provider_cost_saved: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)

    @property
    def hit_rate(self) -> float | None:
        served = self.hits + self.misses
        return self.hits / served if served else None

    def add_hits(self, row: Mapping[str, Any]) -> None:
        """Hits of entries of one model: each saved its entry's tokens and latency."""
        calls, without_entry = row["calls"], row["without_entry"]
        self.calls += calls
        self.hits += calls
        self.hits_without_entry += without_entry
        if calls == without_entry:
            return
        model = row["llm_model"]
        prompt, cached, completion = row["prompt"], row["cached"], row["completion"]
        self.latency_saved_ms += max(row["original_ms"] - row["latency_ms"], 0)
        self.tokens_saved += prompt + completion
        cost = call_cost(model, prompt, cached, completion)
        if cost is None:
            self.unpriced_models.add(model or NO_MODEL)
        else:
            self.cost_saved += cost

    def add_reached(self, row: Mapping[str, Any]) -> None:
        """Calls of one model and outcome that reached the LLM, and what its prompt cache saved."""
        model, cached, calls = row["llm_model"], row["cached"], row["calls"]
        self.calls += calls
        self.reached_llm += calls
        if row["outcome"] == Call.Outcome.MISS:
            self.misses += calls
        elif row["outcome"] == Call.Outcome.ERROR:
            self.errors += calls
        self.provider_cached_tokens += cached
        price = price_of(model)
        if price is not None:
            self.provider_cost_saved += cached * (price.input - price.cached_input) / MILLION
        elif cached:
            self.unpriced_models.add(model or NO_MODEL)


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime  # aware, in the current time zone
    hits: int
    misses: int

    @property
    def total(self) -> int:
        return self.hits + self.misses


@dataclass
class LatencyBucket:
    """How many hits, and calls that reached the LLM, took up to `label`."""

    label: str
    hits: int = 0
    reached: int = 0


def _latency_buckets() -> list[LatencyBucket]:
    labels = [f"≤ {_duration(bound)}" for bound in LATENCY_BOUNDS_MS]
    return [LatencyBucket(label) for label in [*labels, f"> {_duration(LATENCY_BOUNDS_MS[-1])}"]]


def _duration(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


@dataclass
class Overview:
    days: int | None
    since: dt.datetime | None
    total: Savings
    by_schema: list[Savings]
    series: list[Bucket]  # every bucket of the window, empty ones included
    bucket: BucketSize
    has_calls: bool  # any call at all, in the window or not
    itemised: int = 0  # of total.calls, those with a row in the call log
    dropped: int = 0  # call records lost in the window (DroppedRecords)
    latency: list[LatencyBucket] = field(default_factory=list)

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
    bucket: BucketSize = "hour" if days is not None and days <= 2 else "day"
    rollups = _window(since, now, whole_days=bucket == "day")
    total = Savings("All schemas")
    per_schema: dict[str, Savings] = {}
    itemised = 0
    sums = (
        rollups.values("schema_version__name", "llm_model", "outcome")
        .annotate(
            calls=Sum("calls"),
            itemised=Sum("itemised"),
            without_entry=Sum("without_entry"),
            latency_ms=Sum("latency_ms_sum"),
            original_ms=Sum("original_latency_ms_sum"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cached=Sum("cached_prompt_tokens"),
            **{column: Sum(column) for column in LATENCY_COLUMNS},
        )
        .order_by()
    )
    latency = _latency_buckets()
    for row in sums:
        counted: dict[str, Any] = dict(row)
        hit = row["outcome"] == Call.Outcome.HIT
        for slot, column in zip(latency, LATENCY_COLUMNS, strict=True):
            if hit:
                slot.hits += counted[column]
            else:
                slot.reached += counted[column]
        name = row["schema_version__name"]
        if name not in per_schema:
            per_schema[name] = Savings(name.rsplit(".", 1)[-1], name)
        itemised += row["itemised"]
        for target in (total, per_schema[name]):
            if row["outcome"] == Call.Outcome.HIT:
                target.add_hits(row)
            else:
                target.add_reached(row)
    dropped = DroppedRecords.objects.filter(at__lte=now)
    if since is not None:
        dropped = dropped.filter(at__gte=since)
    return Overview(
        days=days,
        since=since,
        total=total,
        by_schema=sorted(per_schema.values(), key=lambda s: (-(s.hits + s.misses), s.label)),
        series=_series(rollups, bucket, since=since, now=now),
        bucket=bucket,
        has_calls=total.calls > 0 or CallRollup.objects.exists(),
        itemised=itemised,
        dropped=dropped.aggregate(total=Sum("count"))["total"] or 0,
        latency=latency,
    )


def _window(
    since: dt.datetime | None, now: dt.datetime, *, whole_days: bool
) -> QuerySet[CallRollup]:
    """The counter rows covering [since, now]: with `whole_days` the hours of the
    partial days at either end and the local days in between, else every hour."""
    if not whole_days:
        hourly = CallRollup.objects.filter(span=CallRollup.Span.HOUR, bucket_start__lte=now)
        return hourly.filter(bucket_start__gte=_utc_hour(since)) if since else hourly
    last_day = bucket_start(now, "day")
    hours = Q(span=CallRollup.Span.HOUR, bucket_start__lte=now, bucket_start__gte=last_day)
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
    following = timezone.localtime(day_start).date() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(following, dt.time.min))


def _series(
    rollups: QuerySet[CallRollup],
    bucket: BucketSize,
    *,
    since: dt.datetime | None,
    now: dt.datetime,
) -> list[Bucket]:
    rows = (
        rollups.filter(outcome__in=[Call.Outcome.HIT, Call.Outcome.MISS])
        .values("span", "bucket_start")
        .annotate(
            hits=Sum("calls", filter=Q(outcome=Call.Outcome.HIT)),
            misses=Sum("calls", filter=Q(outcome=Call.Outcome.MISS)),
        )
        .order_by()
    )
    # Keyed by instant: aware datetimes sharing a tzinfo compare by wall clock, which
    # would make the repeated hour of a DST change one key.
    counts: dict[dt.datetime, tuple[int, int]] = {}
    for row in rows:
        start = bucket_start(row["bucket_start"], bucket).astimezone(dt.UTC)
        hits, misses = counts.get(start, (0, 0))
        counts[start] = (hits + (row["hits"] or 0), misses + (row["misses"] or 0))
    first = since if since is not None else min(counts, default=None)
    if first is None:
        return []
    return [
        Bucket(start, *counts.get(start.astimezone(dt.UTC), (0, 0)))
        for start in _bucket_starts(first, now, bucket)
    ]


def bucket_start(moment: dt.datetime, bucket: BucketSize) -> dt.datetime:
    """The start of the hour or day holding `moment`, in the current time zone."""
    local = timezone.localtime(moment)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return timezone.make_aware(dt.datetime.combine(local.date(), dt.time.min))


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
            next_day = timezone.localtime(start).date() + dt.timedelta(days=1)
            start = timezone.make_aware(dt.datetime.combine(next_day, dt.time.min))
