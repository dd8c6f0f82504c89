"""Reads for the pages: lists, stats, explanations. No writes here."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from extractor.models import Call, Entry


@dataclass(frozen=True)
class OverallStats:
    calls: int
    hits: int
    misses: int
    errors: int
    live_entries: int

    @property
    def hit_rate(self) -> float:
        served = self.hits + self.misses
        return self.hits / served if served else 0.0


def overall_stats() -> OverallStats:
    counts = Call.objects.aggregate(
        calls=Count("id"),
        hits=Count("id", filter=Q(outcome=Call.Outcome.HIT)),
        misses=Count("id", filter=Q(outcome=Call.Outcome.MISS)),
        errors=Count("id", filter=Q(outcome=Call.Outcome.ERROR)),
    )
    return OverallStats(
        live_entries=Entry.objects.filter(status=Entry.Status.LIVE).count(), **counts
    )
