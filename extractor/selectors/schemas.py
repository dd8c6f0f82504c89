"""Registered schemas, their versions and entry counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.models import Entry, SchemaVersion
from extractor.selectors.counting import Tally, count_or_estimate
from extractor.selectors.entries import EntryState, current_code, entries_in_state


@dataclass
class VersionCounts:
    live: Tally  # as the Entries page means it: served, so neither stale nor expired
    stale: Tally
    total: Tally


@dataclass
class SchemaSummary:
    name: str
    versions: list[SchemaVersion] = field(default_factory=list)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def current(self) -> SchemaVersion | None:
        return self.versions[-1] if self.versions else None


def schema_summaries() -> list[SchemaSummary]:
    """Every schema seen, versions oldest first, each with its entry counts as
    `counts` (live, stale and total, "live" meaning what the Entries page means:
    exact while small, estimated beyond, each read through the entries' schema
    version index rather than a GROUP BY of them all; the stale condition is the
    one clause per function of selectors.entries, not a correlated subquery)."""
    summaries: dict[str, SchemaSummary] = {}
    current = current_code()  # read once: the stale condition is one clause per function
    for version in SchemaVersion.objects.order_by("name", "number"):
        entries = Entry.objects.filter(schema_version=version)
        version.counts = VersionCounts(  # type: ignore[attr-defined]
            live=count_or_estimate(entries_in_state(entries, EntryState.LIVE, current)),
            stale=count_or_estimate(entries_in_state(entries, EntryState.STALE, current)),
            total=count_or_estimate(entries),
        )
        summaries.setdefault(version.name, SchemaSummary(version.name)).versions.append(version)
    return list(summaries.values())
