"""The call log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from extractor.models import CachedFunction, Call


@dataclass(frozen=True)
class CallFilters:
    outcome: str = ""
    function: str = ""
    llm_model: str = ""
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    @property
    def active(self) -> bool:
        return any((self.outcome, self.function, self.llm_model, self.since, self.until))


def call_list(filters: CallFilters) -> QuerySet[Call]:
    # No select_related("entry"): a page shows only the entry's id, and an
    # entry row carries its whole output.
    calls = Call.objects.all()
    if filters.outcome:
        calls = calls.filter(outcome=filters.outcome)
    if filters.function:
        calls = calls.filter(function=filters.function)
    if filters.llm_model:
        calls = calls.filter(llm_model=filters.llm_model)
    if filters.since:
        calls = calls.filter(created_at__gte=filters.since)
    if filters.until:
        calls = calls.filter(created_at__lt=filters.until)
    return calls.order_by("-created_at", "-id")


def function_names() -> list[str]:
    return list(CachedFunction.objects.order_by("name").values_list("name", flat=True))


def model_names() -> list[str]:
    return list(
        Call.objects.exclude(llm_model="")
        .order_by("llm_model")
        .values_list("llm_model", flat=True)
        .distinct()
    )
