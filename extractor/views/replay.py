"""Placeholder until the page is built."""

from django.http import HttpRequest, HttpResponse


def replay_start(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def replay_detail(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def replay_accept(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("not built yet", status=501)
