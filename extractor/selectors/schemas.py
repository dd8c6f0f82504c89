"""Registered schemas, their versions and entry counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q

from extractor.models import Entry, SchemaVersion


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
    """Every schema seen, versions oldest first, each annotated with entry counts
    (`live_entries`, `total_entries`)."""
    versions = SchemaVersion.objects.annotate(
        live_entries=Count("entries", filter=Q(entries__status=Entry.Status.LIVE)),
        total_entries=Count("entries"),
    ).order_by("name", "number")
    summaries: dict[str, SchemaSummary] = {}
    for version in versions:
        summaries.setdefault(version.name, SchemaSummary(version.name)).versions.append(version)
    return list(summaries.values())
