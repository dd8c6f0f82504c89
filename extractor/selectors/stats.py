"""The overview: hit rate, what the cache saved, what provider prompt caching saved.

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
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from extractor.models import Call

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
        self.calls += row["n"]
        self.hits += row["n"]
        if row["entry__llm_model"] is None:  # no entry row to join
            self.hits_without_entry += row["n"]
            return
        model = row["entry__llm_model"]
        prompt, cached, completion = row["prompt"] or 0, row["cached"] or 0, row["completion"] or 0
        self.latency_saved_ms += max((row["original_ms"] or 0) - (row["hit_ms"] or 0), 0)
        self.tokens_saved += prompt + completion
        cost = call_cost(model, prompt, cached, completion)
        if cost is None:
            self.unpriced_models.add(model or NO_MODEL)
        else:
            self.cost_saved += cost

    def add_reached(self, row: Mapping[str, Any]) -> None:
        """Calls of one model that reached the LLM, and what its prompt cache saved."""
        model, cached = row["llm_model"], row["cached"] or 0
        self.calls += row["n"]
        self.reached_llm += row["n"]
        self.misses += row["misses"]
        self.errors += row["errors"]
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
class Overview:
    days: int | None
    since: dt.datetime | None
    total: Savings
    by_schema: list[Savings]
    series: list[Bucket]  # every bucket of the window, empty ones included
    bucket: BucketSize
    has_calls: bool  # any call at all, in the window or not

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(self.total.unpriced_models)


def overview(*, days: int | None, now: dt.datetime | None = None) -> Overview:
    """The last `days` days up to `now` (None: all calls)."""
    # In UTC, so "days" are 24-hour spans even across a DST change.
    now = (now or timezone.now()).astimezone(dt.UTC)
    since = now - dt.timedelta(days=days) if days else None
    calls = Call.objects.filter(created_at__lte=now)
    if since is not None:
        calls = calls.filter(created_at__gte=since)
    total = Savings("All schemas")
    per_schema: dict[str, Savings] = {}

    def targets(row: Mapping[str, Any]) -> tuple[Savings, Savings]:
        name = row["schema_version__name"] or ""
        if name not in per_schema:
            per_schema[name] = Savings(name.rsplit(".", 1)[-1] or "(unknown schema)", name)
        return total, per_schema[name]

    hits = (
        calls.filter(outcome=Call.Outcome.HIT)
        .values("entry__llm_model", "schema_version__name")
        .annotate(
            n=Count("id"),
            prompt=Sum("entry__prompt_tokens"),
            cached=Sum("entry__cached_prompt_tokens"),
            completion=Sum("entry__completion_tokens"),
            original_ms=Sum("entry__latency_ms"),
            hit_ms=Sum("latency_ms"),
        )
        .order_by()
    )
    for hit_row in hits:
        for target in targets(hit_row):
            target.add_hits(hit_row)
    reached = (
        calls.exclude(outcome=Call.Outcome.HIT)
        .values("llm_model", "schema_version__name")
        .annotate(
            n=Count("id"),
            misses=Count("id", filter=Q(outcome=Call.Outcome.MISS)),
            errors=Count("id", filter=Q(outcome=Call.Outcome.ERROR)),
            cached=Sum("cached_prompt_tokens"),
        )
        .order_by()
    )
    for reached_row in reached:
        for target in targets(reached_row):
            target.add_reached(reached_row)
    bucket: BucketSize = "hour" if days is not None and days <= 2 else "day"
    return Overview(
        days=days,
        since=since,
        total=total,
        by_schema=sorted(per_schema.values(), key=lambda s: (-(s.hits + s.misses), s.label)),
        series=_series(calls, bucket, since=since, now=now),
        bucket=bucket,
        has_calls=total.calls > 0 or Call.objects.exists(),
    )


def _series(
    calls: QuerySet[Call], bucket: BucketSize, *, since: dt.datetime | None, now: dt.datetime
) -> list[Bucket]:
    trunc = TruncHour if bucket == "hour" else TruncDay
    rows = (
        calls.filter(outcome__in=[Call.Outcome.HIT, Call.Outcome.MISS])
        .annotate(bucket=trunc("created_at"))
        .values("bucket")
        .annotate(
            hits=Count("id", filter=Q(outcome=Call.Outcome.HIT)),
            misses=Count("id", filter=Q(outcome=Call.Outcome.MISS)),
        )
        .order_by("bucket")
    )
    # Keyed by instant: aware datetimes sharing a tzinfo compare by wall clock, which
    # would make the repeated hour of a DST change one key.
    counts = {
        bucket_start(row["bucket"], bucket).astimezone(dt.UTC): (row["hits"], row["misses"])
        for row in rows
    }
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
