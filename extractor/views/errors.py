"""Error pages Django would otherwise answer bare: a CSRF failure and a wrong method."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the site's own 403 saying what happened and how to retry.

    `reason` is Django's technical wording (for the log, which Django already writes);
    the page says it in the user's terms.
    """
    return render(request, "403_csrf.html", status=403)


class MethodNotAllowedPageMiddleware:
    """Give require_POST/require_GET's empty 405 a page in the site's layout.

    Without a body the browser shows its own error page, with no way back into the
    dashboard. The Allow header is kept.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.streaming or response.content:
            return response
        allowed = response.get("Allow", "")
        page = render(
            request,
            "405.html",
            {"method": request.method, "allowed": allowed.replace(", ", " or ")},
            status=405,
        )
        if allowed:
            page["Allow"] = allowed
        return page
