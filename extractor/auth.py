"""Every dashboard page is for logged-in staff: others are sent to log in or refused."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = TypeVar("View", bound=Callable[..., HttpResponse])


def staff_required(view: View) -> View:
    """Anonymous: redirect to the login page. Logged in but not staff: 403."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("The cache dashboard is for staff users.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)  # type: ignore[return-value]
