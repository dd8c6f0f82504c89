"""What the invalidate page offers to choose from: what exists, named as the pages name it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from extractor.models import CachedFunction, SchemaVersion
from extractor.selectors.entries import entry_function_names, entry_model_names

Choices = list[tuple[str, str]]  # (the target the form takes, what the person reads)


@dataclass(frozen=True)
class TargetChooser:
    action: str  # an Invalidation.Action value
    label: str
    choices: Choices


def _short_name(name: str) -> str:
    return name.replace(":", ".").rsplit(".", 1)[-1]


def function_choices() -> Choices:
    """Every function with a row or entries; the short name, or the full one where two
    share a short name (so the choice tells them apart)."""
    # Entries' distinct functions by a loose index scan: DISTINCT would read every entry.
    names = sorted(
        set(CachedFunction.objects.values_list("name", flat=True)) | set(entry_function_names())
    )
    shared = Counter(_short_name(name) for name in names)
    return [(name, name if shared[_short_name(name)] > 1 else _short_name(name)) for name in names]


def schema_version_choices() -> Choices:
    """Every schema version, newest of each schema first, as "UserDetail v2" (with the
    full schema name where two schemas share a short one)."""
    versions = list(SchemaVersion.objects.order_by("name", "-number"))
    short_names = {version.name: version.short_name for version in versions}
    shared = Counter(short_names.values())
    return [
        (
            str(version.pk),
            f"{version} ({version.name})" if shared[version.short_name] > 1 else str(version),
        )
        for version in versions
    ]


def model_choices() -> Choices:
    return [(model, model) for model in entry_model_names()]


def invalidation_choosers() -> list[TargetChooser]:
    """One chooser per action whose targets can be listed (entries are too many: an
    entry is invalidated from its own page, or by id or key)."""
    return [
        TargetChooser("function", "A function", function_choices()),
        TargetChooser("schema_version", "A schema version", schema_version_choices()),
        TargetChooser("model", "An LLM model", model_choices()),
    ]
