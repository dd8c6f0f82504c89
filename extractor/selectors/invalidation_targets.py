"""What the invalidate page offers to choose from: what exists, named as the pages name it."""

from __future__ import annotations

from dataclasses import dataclass

from extractor.models import CachedFunction, SchemaVersion
from extractor.selectors.display_names import DisplayNames, unique_names
from extractor.selectors.entries import entry_function_names, entry_model_names

Choices = list[tuple[str, str]]  # (the target the form takes, what the person reads)


@dataclass(frozen=True)
class TargetChooser:
    action: str  # an Invalidation.Action value
    label: str
    choices: Choices


def function_choices() -> Choices:
    """Every function with a row or entries, by its display name (the short name, and
    where it lives when two share it)."""
    # Entries' distinct functions by a loose index scan: DISTINCT would read every entry.
    names = set(CachedFunction.objects.values_list("name", flat=True)) | set(entry_function_names())
    shown = unique_names(names)
    return sorted(shown.items(), key=lambda choice: choice[1].lower())


def schema_version_choices() -> Choices:
    """Every schema version, newest of each schema first, as "UserDetail v2" (followed by
    the schema's module where two schemas share a short name)."""
    versions = list(SchemaVersion.objects.order_by("name", "-number"))
    names = DisplayNames(functions={}, schemas=unique_names(version.name for version in versions))
    return [(str(version.pk), names.schema_version(version)) for version in versions]


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
