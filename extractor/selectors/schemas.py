"""Registered schemas, their versions and entry counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.models import Entry, SchemaVersion
from extractor.selectors.counting import Tally, count_or_estimate


@dataclass
class VersionCounts:
    live: Tally
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
    `counts` (live and total: exact while small, estimated beyond, each read
    through the entries' schema version index rather than a GROUP BY of them all)."""
    summaries: dict[str, SchemaSummary] = {}
    for version in SchemaVersion.objects.order_by("name", "number"):
        entries = Entry.objects.filter(schema_version=version)
        version.counts = VersionCounts(  # type: ignore[attr-defined]
            live=count_or_estimate(entries.filter(status=Entry.Status.LIVE)),
            total=count_or_estimate(entries),
        )
        summaries.setdefault(version.name, SchemaSummary(version.name)).versions.append(version)
    return list(summaries.values())
