"""Placeholder until the page is built."""

from django.http import HttpRequest, HttpResponse


def invalidate(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def invalidation_list(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def invalidation_detail(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def invalidation_retry(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)
