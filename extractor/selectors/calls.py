"""The call log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from extractor.models import Call


@dataclass(frozen=True)
class CallFilters:
    outcome: str = ""
    function: str = ""
    llm_model: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def call_list(filters: CallFilters) -> QuerySet[Call]:
    calls = Call.objects.select_related("schema_version", "entry")
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
    from extractor.models import CachedFunction

    return list(CachedFunction.objects.order_by("name").values_list("name", flat=True))


def model_names() -> list[str]:
    return list(
        Call.objects.exclude(llm_model="")
        .order_by("llm_model")
        .values_list("llm_model", flat=True)
        .distinct()
    )
