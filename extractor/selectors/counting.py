"""Counts a page can afford: exact while small, the planner's estimate beyond.

COUNT(*) reads every matching row, and at a million entries that takes seconds.
So at most EXACT_UP_TO + 1 matching rows are read first, through the list's
indexes: when there are no more, that is the exact count. Past it, PostgreSQL's
planner gives an estimate (EXPLAIN: no row is read, the statistics ANALYZE
keeps answer), shown labelled as one ("about 1.2 million"), or "more than
1,000" when the planner expected fewer rows than were just read. Reading first
costs a few milliseconds (a thousand rows of a text search take about ten),
and keeps a small list exact when the statistics are stale: a table pruned
since the last ANALYZE must not read "about 300" for 3 rows. SQLite keeps no
estimate a query can read: it counts exactly (at its scale, about 100,000
entries, that stays quick).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.humanize.templatetags.humanize import intcomma
from django.db import connections
from django.db.models import QuerySet

EXACT_UP_TO = 1_000


@dataclass(frozen=True)
class Tally:
    value: int
    exact: bool
    # Not an estimate but a floor: more rows were read than the planner expected.
    at_least: bool = False

    @property
    def label(self) -> str:
        """ "1,234" when exact, "about 54,000" or "about 1.2 million" when estimated,
        "more than 1,000" when only that much is known."""
        if self.exact:
            return str(intcomma(self.value))
        if self.at_least:
            return f"more than {intcomma(self.value - 1)}"
        return f"about {rounded(self.value)}"


def rounded(number: int) -> str:
    """Two significant figures (millions to one decimal), as an estimate deserves."""
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}".removesuffix(".0") + " million"
    if number < 100:
        return str(number)
    digits = len(str(number)) - 2
    return str(intcomma(round(number, -digits)))


def count_or_estimate(queryset: QuerySet[Any], exact_up_to: int = EXACT_UP_TO) -> Tally:
    queryset = queryset.order_by()
    counted = queryset[: exact_up_to + 1].count()
    if counted <= exact_up_to:
        return Tally(counted, exact=True)
    if connections[queryset.db].vendor != "postgresql":
        return Tally(queryset.count(), exact=True)
    estimate = planner_estimate(queryset)
    if estimate < counted:
        # The planner expected fewer than were just read: say only what is known.
        return Tally(counted, exact=False, at_least=True)
    return Tally(estimate, exact=False)


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of the rows `queryset` returns (no row is read)."""
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
