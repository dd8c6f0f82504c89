"""The export links' query: the list's filters without its position in the list."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

register = template.Library()

# Where the page is in the list: an export is the whole selection, not one page.
POSITION_PARAMETERS = ("after", "before", "page")


@register.simple_tag(takes_context=True)
def export_query(context: dict[str, Any]) -> str:
    """The current query string without the page's cursor ("" when nothing is left)."""
    request: HttpRequest = context["request"]
    params = request.GET.copy()
    for name in POSITION_PARAMETERS:
        params.pop(name, None)
    return "?" + params.urlencode() if params else ""
