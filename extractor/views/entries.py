"""Entries: what is cached, filtered, searched and sorted; stale values flagged."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import EntryFilterForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.models import Entry
from extractor.selectors import entries as selectors
from extractor.selectors.keyset import BadCursor

PER_PAGE = 50
# The states whose entries still hold a stored value an invalidation can drop.
INVALIDATABLE_STATES = {
    selectors.EntryState.LIVE,
    selectors.EntryState.STALE,
    selectors.EntryState.EXPIRED,
    selectors.EntryState.ALL,
}


@require_GET
@staff_required
def entry_list(request: HtmxHttpRequest) -> HttpResponse:
    form = EntryFilterForm(request.GET)
    form.is_valid()  # invalid filters are shown as errors and left out
    filters = form.filters()
    try:
        cursor = selectors.entry_cursor(request.GET, filters)
        bad_cursor = False
    except BadCursor:
        # A link from another sort, or edited by hand: the list from its start.
        cursor, bad_cursor = None, True
    listing = selectors.entry_listing(filters, cursor, PER_PAGE)
    return render_page_or_fragment(
        request,
        "extractor/entries.html",
        "results",
        {
            "form": form,
            "filters": filters,
            "page": listing.page,
            "count": listing.count,
            "bad_cursor": bad_cursor,
            "filtered": filters != selectors.EntryFilters(),
            # Called by the template only when the page is empty.
            "anything_cached": Entry.objects.exists,
            "showing_live_only": filters.state == selectors.EntryState.LIVE,
            # What "Invalidate these entries" targets; none where nothing can be dropped.
            "selection": selectors.selection_query(filters)
            if filters.state in INVALIDATABLE_STATES
            else "",
        },
    )
