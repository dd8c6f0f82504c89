from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from extractor import selectors


@require_GET
@staff_member_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "extractor/overview.html", {"stats": selectors.overall_stats()})
