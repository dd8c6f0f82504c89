"""Calls: the call log, filterable by outcome, function, model and time range."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import CallFilterForm
from extractor.http import HtmxHttpRequest
from extractor.selectors import calls as selectors

PER_PAGE = 50


@require_GET
@staff_required
def call_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CallFilterForm(
        request.GET, functions=selectors.function_names(), models=selectors.model_names()
    )
    form.is_valid()  # invalid filters are shown as errors and left out
    filters = form.filters()
    page = Paginator(selectors.call_list(filters), PER_PAGE).get_page(request.GET.get("page"))
    template = "extractor/calls.html"
    htmx = request.htmx
    if htmx and not htmx.history_restore_request:
        template += "#results"
    response = render(
        request,
        template,
        {
            "form": form,
            "page": page,
            # An empty page without filters means nothing was ever recorded.
            "filtered": filters.active,
        },
    )
    # The same URL answers a fragment to htmx and a page to the browser.
    patch_vary_headers(response, ["HX-Request"])
    return response
