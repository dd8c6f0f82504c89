"""Overview, the landing page: what the cache saved, beside provider prompt caching."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import OverviewWindowForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.selectors.stats import overview as select_overview


@require_GET
@staff_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    form = OverviewWindowForm(request.GET)
    return render_page_or_fragment(
        request,
        "extractor/overview.html",
        "body",
        {
            "overview": select_overview(days=form.days_back()),
            "window": form.window(),
            "windows": OverviewWindowForm.CHOICES,
        },
    )
