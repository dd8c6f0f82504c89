"""Extract: run the built-in extraction through the cache and show what happened."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from extractor.auth import staff_required
from extractor.forms import ExtractForm
from extractor.http import HtmxHttpRequest
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
            )
    else:
        form = ExtractForm()
    template = "extractor/extract.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, {"form": form, "result": result})
