"""Template helpers for the dashboard. Everything returned here is plain text, so
Django's autoescaping still applies: cached output is user data."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import template
from django.http import HttpRequest

from extractor.models import SchemaVersion
from extractor.selectors.display_names import DisplayNames, display_names

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def short_key(value: str) -> str:
    return value[:12]


def _names(context: template.Context) -> DisplayNames:
    """The request's display names (context processor), read at most once per render."""
    names = context.get("display_names")
    if names is None:
        names = context.render_context.get("display_names")
        if names is None:
            names = context.render_context["display_names"] = display_names()
    return names


@register.simple_tag(takes_context=True)
def function_name(context: template.Context, name: str) -> str:
    """A function as every page names it: unique short name (see selectors.display_names)."""
    return _names(context).function(name)


@register.simple_tag(takes_context=True)
def schema_name(context: template.Context, name: str) -> str:
    return _names(context).schema(name)


@register.simple_tag(takes_context=True)
def schema_version_name(context: template.Context, version: SchemaVersion) -> str:
    return _names(context).schema_version(version)


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@register.filter
def usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


@register.simple_tag(takes_context=True)
def query_with(context: dict[str, Any], **changes: Any) -> str:
    """The current query string with some parameters changed (pagination, sorting)."""
    request: HttpRequest = context["request"]
    params = request.GET.copy()
    for name, value in changes.items():
        if value in (None, ""):
            params.pop(name, None)
        else:
            params[name] = value
    return "?" + urlencode(sorted(params.items())) if params else "?"


@register.filter
def duration_ms(value: float | None) -> str:
    """Milliseconds as a person reads them: "0.012 ms" for a hit, "1.3 s", "2 h 5 min"."""
    if value is None:
        return "—"
    if value == 0:
        return "0 ms"
    if value < 0.001:
        return "< 0.001 ms"
    # Each threshold is checked after rounding, so 999.7 ms reads "1.0 s", not "1000 ms".
    if round(value, 3) < 1:
        return f"{value:.3f} ms"
    if round(value, 1) < 100:
        return f"{value:.1f} ms"
    if round(value) < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes = round(seconds) // 60
    if minutes < 60:
        return f"{minutes} min {round(seconds) % 60} s"
    return f"{minutes // 60} h {minutes % 60} min"


@register.filter
def seconds_to_invalidate(count: int) -> str:
    """A rough duration for the progress note (about 30,000 entries a second on disk)."""
    seconds = count / 30_000
    return "a second" if seconds < 2 else f"{seconds:.0f} seconds"
