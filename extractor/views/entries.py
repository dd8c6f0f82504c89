"""Entries: what is cached, filtered, searched and sorted; stale values flagged."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import EntryFilterForm
from extractor.http import HtmxHttpRequest
from extractor.models import Entry
from extractor.selectors import entries as selectors

PER_PAGE = 50


@require_GET
@staff_required
def entry_list(request: HtmxHttpRequest) -> HttpResponse:
    form = EntryFilterForm(request.GET)
    form.is_valid()  # invalid filters are shown as errors and left out
    filters = form.filters()
    page = Paginator(selectors.entry_list(filters), PER_PAGE).get_page(request.GET.get("page"))
    template = "extractor/entries.html"
    htmx = request.htmx
    if htmx and not htmx.boosted:
        template += "#results"
    return render(
        request,
        template,
        {
            "form": form,
            "filters": filters,
            "page": page,
            "filtered": filters != selectors.EntryFilters(),
            # Called by the template only when the page is empty.
            "anything_cached": Entry.objects.exists,
            "showing_live_only": filters.state == selectors.EntryState.LIVE,
        },
    )
