"""Extract: run the built-in extraction through the cache and show what happened."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_http_methods

from extractor.auth import staff_required
from extractor.forms import ExtractForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.services.extraction import extraction_run


@require_http_methods(["GET", "POST"])
@staff_required
def extract(request: HtmxHttpRequest) -> HttpResponse:
    result = None
    if request.method == "POST":
        form = ExtractForm(request.POST)
        if form.is_valid():
            result = extraction_run(
                text=form.cleaned_data["text"],
                schema_name=form.cleaned_data["schema"],
                model=form.cleaned_data["model"],
                refresh=form.cleaned_data["refresh"],
            )
            # A refresh is one run's choice: left ticked, the next Extract would
            # call (and pay for) the LLM again where the cache holds the answer.
            form = ExtractForm(initial={**form.cleaned_data, "refresh": False})
    else:
        form = ExtractForm()
    return render_page_or_fragment(
        request, "extractor/extract.html", "panel", {"form": form, "result": result}
    )
