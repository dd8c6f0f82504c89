"""Overview, the landing page: what the cache saved, beside provider prompt caching."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import OverviewRangeForm, OverviewWindowForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.selectors.prompt_caching import prompt_caching_overview
from extractor.selectors.stats import overview as select_overview
from extractor.selectors.stats import overview_of_dates


@require_GET
@staff_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    window_form = OverviewWindowForm(request.GET)
    range_form = OverviewRangeForm(request.GET)
    if range_form.is_bound and range_form.is_valid():
        first, last = range_form.dates()
        figures = overview_of_dates(first=first, last=last)
    else:
        # A range with errors is shown with them, beside the window's figures.
        figures = select_overview(days=window_form.days_back())
        if not range_form.is_bound and figures.since is not None:
            # The dates the window covers, as a start for picking a range.
            range_form.initial = {
                "from": timezone.localdate(figures.since),
                "to": timezone.localdate(figures.until),
            }
    return render_page_or_fragment(
        request,
        "extractor/overview.html",
        "body",
        {
            "overview": figures,
            "window": None if figures.dates else window_form.window(),
            "windows": OverviewWindowForm.CHOICES,
            "range_form": range_form,
            # Provider prompt caching, per model and per document: its own tables, never
            # merged with the response cache's.
            "prompt_caching": prompt_caching_overview(
                since=figures.since, until=figures.until, whole_days=figures.bucket == "day"
            ),
        },
    )
