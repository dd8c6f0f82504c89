"""Every dashboard page is for logged-in staff: others are sent to log in or refused."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from django.contrib.auth.models import User

View = TypeVar("View", bound=Callable[..., HttpResponse])


def acting_user(request: HttpRequest) -> User | None:
    """The logged-in user behind a change, for its history (None if anonymous)."""
    user = request.user
    return user if user.is_authenticated else None


def staff_required(view: View) -> View:
    """Anonymous: redirect to the login page. Logged in but not staff: 403."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("The cache dashboard is for staff users.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)  # type: ignore[return-value]
