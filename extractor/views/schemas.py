"""Placeholder until the page is built."""

from django.http import HttpRequest, HttpResponse


def schema_list(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)
