"""Calls: the call log, filterable by outcome, function, model and time range."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import CallFilterForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.selectors import calls as selectors
from extractor.selectors.keyset import BadCursor

PER_PAGE = 50


@require_GET
@staff_required
def call_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CallFilterForm(
        request.GET, functions=selectors.function_names(), models=selectors.model_names()
    )
    form.is_valid()  # invalid filters are shown as errors and left out
    filters = form.filters()
    try:
        cursor = selectors.call_cursor(request.GET)
        bad_cursor = False
    except BadCursor:
        # A damaged or hand-edited link: the log from its newest call.
        cursor, bad_cursor = None, True
    page = selectors.call_page(filters, cursor, PER_PAGE)
    return render_page_or_fragment(
        request,
        "extractor/calls.html",
        "results",
        {
            "form": form,
            "page": page,
            "count": selectors.call_count(filters, page),
            "bad_cursor": bad_cursor,
            # An empty page without filters means nothing was ever recorded.
            "filtered": filters.active,
        },
    )
