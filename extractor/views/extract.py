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
        form = ExtractForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            result = extraction_run(
                text=data["text"],
                schema_name=data["schema"],
                model=data["model"],
                refresh=data["refresh"],
                document_text=data["document_text"],
                document_name=data["document_name"],
                cache_ttl=data["cache_ttl"],
            )
            # A refresh is one run's choice: left ticked, the next Extract would
            # call (and pay for) the LLM again where the cache holds the answer.
            # An uploaded document stays as text, ready for the next question.
            form = ExtractForm(
                initial={**data, "refresh": False, "document": data["document_text"]}
            )
    else:
        form = ExtractForm()
    return render_page_or_fragment(
        request, "extractor/extract.html", "panel", {"form": form, "result": result}
    )
