"""The request type the views take (django-htmx's middleware adds `request.htmx`) and
the one way a view answers htmx."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """Whether htmx asked for a fragment: not a boosted link nor a history restore, which
    both put the answer into <body> and so need the whole page."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page_or_fragment(
    request: HtmxHttpRequest,
    template: str,
    fragment: str,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    """The whole page, or for htmx only its `fragment` partial.

    A boosted request (a plain link htmx follows) and a history restore (htmx
    refetching a page missing from its cache) want the whole page. The same URL
    answers both ways, so caches must key on HX-Request. A view whose fragment needs
    less context may ask `wants_fragment` first and pass only that.
    """
    name = f"{template}#{fragment}" if wants_fragment(request) else template
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response
