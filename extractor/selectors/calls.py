"""The call log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import QuerySet

from extractor.models import CachedFunction, Call
from extractor.selectors.counting import Tally, count_or_estimate
from extractor.selectors.distinct import distinct_values
from extractor.selectors.keyset import (
    Cursor,
    KeysetPage,
    Ordering,
    SortKey,
    keyset_page,
    parse_cursor,
)

# Newest first. Each filter has an index that starts with it and continues with
# created_at: (outcome, created_at), (function, created_at), (llm_model,
# created_at); a page starts at its cursor in it (ties of created_at, rare, are
# ordered by id as they are read).
NEWEST_FIRST = Ordering("newest", (SortKey("created_at"), SortKey("id")))


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
    """The whole log the filters select, newest first."""
    return calls_matching(filters).order_by(*NEWEST_FIRST.order_by())


def calls_matching(filters: CallFilters) -> QuerySet[Call]:
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
    return calls


def call_cursor(params: Mapping[str, str]) -> Cursor | None:
    """The page asked for in the query string; BadCursor when it cannot be read."""
    return parse_cursor(params, NEWEST_FIRST, Call)


def call_page(filters: CallFilters, cursor: Cursor | None, size: int) -> KeysetPage[Call]:
    return keyset_page(calls_matching(filters), NEWEST_FIRST, cursor, size)


def call_count(filters: CallFilters, page: KeysetPage[Call]) -> Tally:
    """How many calls the filters select: exact while cheap, else an estimate."""
    if page.is_first and not page.has_next:
        return Tally(len(page.object_list), exact=True)
    return count_or_estimate(calls_matching(filters))


def function_names() -> list[str]:
    return list(CachedFunction.objects.order_by("name").values_list("name", flat=True))


def model_names() -> list[str]:
    """Every model a call was recorded with, from the (llm_model, created_at) index."""
    return distinct_values(Call, "llm_model")
