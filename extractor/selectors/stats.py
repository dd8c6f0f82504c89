"""The overview: hit rate, what the cache saved, what provider prompt caching saved."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from extractor.models import Call

MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


def price_of(model: str) -> Price | None:
    prices = settings.EXTRACTOR_PRICES
    raw = prices.get(model)
    if raw is None:
        # "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini": the longest known prefix.
        matches = [name for name in prices if model.startswith(name)]
        raw = prices[max(matches, key=len)] if matches else None
    return Price(*map(float, raw)) if raw is not None else None


def call_cost(model: str, prompt: int, cached: int, completion: int) -> float | None:
    price = price_of(model)
    if price is None:
        return None
    uncached = max(prompt - cached, 0)
    return (
        uncached * price.input + cached * price.cached_input + completion * price.output
    ) / MILLION


@dataclass
class Savings:
    label: str
    hits: int = 0
    misses: int = 0
    errors: int = 0
    latency_saved_ms: float = 0.0
    tokens_saved: int = 0
    cost_saved: float = 0.0
    # Provider prompt caching, on the calls that did reach the LLM.
    provider_cached_tokens: int = 0
    provider_cost_saved: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)

    @property
    def hit_rate(self) -> float | None:
        served = self.hits + self.misses
        return self.hits / served if served else None

    def add_hits(self, row: dict[str, Any]) -> None:
        """Hits of entries of one model: each saved its entry's tokens and latency."""
        model = row["entry__llm_model"]
        prompt, cached, completion = row["prompt"] or 0, row["cached"] or 0, row["completion"] or 0
        self.hits += row["n"]
        self.latency_saved_ms += (row["original_ms"] or 0) - (row["hit_ms"] or 0)
        self.tokens_saved += prompt + completion
        cost = call_cost(model, prompt, cached, completion)
        if cost is None:
            self.unpriced_models.add(model)
        else:
            self.cost_saved += cost

    def add_reached(self, row: dict[str, Any]) -> None:
        """Calls of one model that reached the LLM, and what its prompt cache saved."""
        model, cached = row["llm_model"], row["cached"] or 0
        self.misses += row["misses"]
        self.errors += row["errors"]
        self.provider_cached_tokens += cached
        price = price_of(model)
        if price is not None:
            self.provider_cost_saved += cached * (price.input - price.cached_input) / MILLION
        elif cached:
            self.unpriced_models.add(model)


@dataclass
class Overview:
    since: dt.datetime | None
    total: Savings
    by_schema: list[Savings]
    series: list[tuple[dt.datetime, int, int]]  # (bucket, hits, misses)
    bucket: str  # "hour" or "day"


def overview(*, days: int | None) -> Overview:
    since = timezone.now() - dt.timedelta(days=days) if days else None
    calls = Call.objects.all()
    if since is not None:
        calls = calls.filter(created_at__gte=since)
    total = Savings("All schemas")
    per_schema: dict[str, Savings] = {}

    def targets(row: dict[str, Any]) -> tuple[Savings, Savings]:
        name = row["schema_version__name"] or "(unknown)"
        if name not in per_schema:
            per_schema[name] = Savings(name.rsplit(".", 1)[-1])
        return total, per_schema[name]

    hits = (
        calls.filter(outcome=Call.Outcome.HIT, entry__isnull=False)
        .values("entry__llm_model", "schema_version__name")
        .annotate(
            n=Count("id"),
            prompt=Sum("entry__prompt_tokens"),
            cached=Sum("entry__cached_prompt_tokens"),
            completion=Sum("entry__completion_tokens"),
            original_ms=Sum("entry__latency_ms"),
            hit_ms=Sum("latency_ms"),
        )
    )
    for row in hits:
        for target in targets(row):
            target.add_hits(row)
    reached = (
        calls.exclude(outcome=Call.Outcome.HIT)
        .values("llm_model", "schema_version__name")
        .annotate(
            misses=Count("id", filter=Q(outcome=Call.Outcome.MISS)),
            errors=Count("id", filter=Q(outcome=Call.Outcome.ERROR)),
            cached=Sum("cached_prompt_tokens"),
        )
    )
    for row in reached:
        for target in targets(row):
            target.add_reached(row)
    bucket = "hour" if days is not None and days <= 2 else "day"
    return Overview(
        since=since,
        total=total,
        by_schema=sorted(per_schema.values(), key=lambda s: -(s.hits + s.misses)),
        series=_series(calls, bucket),
        bucket=bucket,
    )


def _series(calls: QuerySet[Call], bucket: str) -> list[tuple[dt.datetime, int, int]]:
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
    return [(row["bucket"], row["hits"], row["misses"]) for row in rows]

