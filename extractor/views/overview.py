"""Overview, the landing page: what the cache saved, beside provider prompt caching."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import OverviewWindowForm
from extractor.http import HtmxHttpRequest
from extractor.selectors.stats import overview as select_overview


@require_GET
@staff_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    form = OverviewWindowForm(request.GET)
    template = "extractor/overview.html"
    htmx = request.htmx
    if htmx and not htmx.history_restore_request:
        template += "#body"
    response = render(
        request,
        template,
        {
            "overview": select_overview(days=form.days_back()),
            "window": form.window(),
            "windows": OverviewWindowForm.CHOICES,
        },
    )
    patch_vary_headers(response, ["HX-Request"])
    return response
