"""Field-level differences: cached vs fresh output, and one schema version vs another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"


@dataclass(frozen=True)
class FieldChange:
    path: str  # "address.city", "items[2]"
    kind: str  # same, changed, added, removed
    old: Any = None
    new: Any = None


def output_diff(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf field of either side, with how it changed."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[FieldChange] = []
        for name in [*old, *(n for n in new if n not in old)]:
            child = f"{path}.{name}" if path else str(name)
            if name not in new:
                changes.append(FieldChange(child, REMOVED, old=old[name]))
            elif name not in old:
                changes.append(FieldChange(child, ADDED, new=new[name]))
            else:
                changes.extend(output_diff(old[name], new[name], child))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(new):
                changes.append(FieldChange(child, REMOVED, old=old[index]))
            elif index >= len(old):
                changes.append(FieldChange(child, ADDED, new=new[index]))
            else:
                changes.extend(output_diff(old[index], new[index], child))
        return changes
    return [FieldChange(path or "(value)", SAME if old == new else CHANGED, old=old, new=new)]


def differs(changes: list[FieldChange]) -> bool:
    return any(change.kind != SAME for change in changes)


@dataclass(frozen=True)
class SchemaChange:
    field: str  # "name", "Address.city", "(model)"
    kind: str  # added, removed, changed
    detail: str


_ASPECTS = ("type", "format", "default", "description", "enum", "items", "anyOf", "$ref", "title")


def schema_diff(old: dict[str, Any], new: dict[str, Any]) -> list[SchemaChange]:
    """Fields and descriptions added, removed or changed between two JSON schemas."""
    changes = _model_diff("", old, new)
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name in sorted(set(old_defs) | set(new_defs)):
        if name not in new_defs:
            changes.append(SchemaChange(name, REMOVED, "nested model removed"))
        elif name not in old_defs:
            changes.append(SchemaChange(name, ADDED, "nested model added"))
        else:
            changes.extend(_model_diff(f"{name}.", old_defs[name], new_defs[name]))
    return changes


def _model_diff(prefix: str, old: dict[str, Any], new: dict[str, Any]) -> list[SchemaChange]:
    changes: list[SchemaChange] = []
    if old.get("description") != new.get("description"):
        changes.append(
            SchemaChange(
                f"{prefix}(model)" if prefix else "(model)",
                CHANGED,
                f"description: {_show(old.get('description'))} → {_show(new.get('description'))}",
            )
        )
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in [*old_props, *(n for n in new_props if n not in old_props)]:
        field = f"{prefix}{name}"
        if name not in new_props:
            changes.append(SchemaChange(field, REMOVED, _describe(old_props[name])))
            continue
        if name not in old_props:
            changes.append(SchemaChange(field, ADDED, _describe(new_props[name])))
            continue
        details = [
            f"{aspect}: {_show(old_props[name].get(aspect))} → {_show(new_props[name].get(aspect))}"
            for aspect in _ASPECTS
            if old_props[name].get(aspect) != new_props[name].get(aspect)
        ]
        if (name in old_required) != (name in new_required):
            details.append("now required" if name in new_required else "now optional")
        if details:
            changes.append(SchemaChange(field, CHANGED, "; ".join(details)))
    return changes


def _describe(prop: dict[str, Any]) -> str:
    kind = prop.get("type") or prop.get("$ref", "").rsplit("/", 1)[-1] or "any"
    described = f" — {prop['description']}" if prop.get("description") else ""
    return f"{kind}{described}"


def _show(value: Any) -> str:
    return "—" if value is None else repr(value)
