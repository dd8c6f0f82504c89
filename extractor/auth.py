"""Every dashboard page is for logged-in staff: others are sent to log in or refused."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# HttpResponseBase: a streamed export is a view's answer as much as a page is.
View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def acting_user(request: HttpRequest) -> User | None:
    """The logged-in user behind a change, for its history (None if anonymous)."""
    user = request.user
    return user if user.is_authenticated else None


def to_login(request: HttpRequest) -> HttpResponse:
    """Send an anonymous request to log in, then back to the page it came from.

    A plain 302 would be followed inside an htmx request and the login page swapped
    into the target as a fragment; htmx needs HX-Redirect to load it as a page. Its
    `next` is the page the user is on (a POST URL would answer a GET with 405).
    """
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if not htmx:
        return redirect_to_login(request.get_full_path())
    page = request.get_full_path() if request.method == "GET" else htmx.current_url_abs_path
    return HttpResponseClientRedirect(redirect_to_login(page or "/")["Location"])


def staff_required(view: View) -> View:
    """Anonymous: send to the login page. Logged in but not staff: 403."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return to_login(request)
        if not request.user.is_staff:
            raise PermissionDenied("The cache dashboard is for staff users.")
        return view(request, *args, **kwargs)

    return wrapped  # type: ignore[return-value]
