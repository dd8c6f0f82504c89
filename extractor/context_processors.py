"""What every dashboard page needs to know beyond its own view."""

from __future__ import annotations

import logging
from time import monotonic

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from extractor.caching.backends import CacheBackend
from extractor.caching.defaults import default_backend
from extractor.redaction import redact
from extractor.selectors.display_names import display_names as select_display_names

logger = logging.getLogger("extractor")

# A page view asks the backend at most this often: problem() is a stat at
# most, but a busy dashboard need not pay even that per request.
_FRESH_FOR = 1.0
_last: tuple[CacheBackend | None, float, str | None] = (None, 0.0, None)


def cache_health(request: HttpRequest) -> dict[str, str | None]:
    """`cache_problem`: what is wrong with the default cache and the fix, or None.

    Only staff see it: it names directories and hosts.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {"cache_problem": None}
    return {"cache_problem": default_cache_problem()}


def default_cache_problem() -> str | None:
    global _last
    try:
        backend = default_backend()
    except Exception as exc:  # a URL that no longer parses: startup would have said so
        return f"The cache cannot be set up: {exc}"
    cached_for, fresh_until, problem = _last
    now = monotonic()
    if cached_for is backend and now < fresh_until:
        return problem
    try:
        problem = backend.problem()
        # It quotes paths and URLs, which may carry a password or a key: masked like logs.
        problem = redact(problem) if problem else problem
    except Exception:  # the banner must never be what breaks a page
        logger.exception("could not check the cache backend %s", backend.label)
        problem = None
    _last = (backend, now + _FRESH_FOR, problem)
    return problem


def display_names(request: HttpRequest) -> dict[str, object]:
    """`display_names`: one unique name per function and schema for the whole page,
    read from the database only if the page names one."""
    return {"display_names": SimpleLazyObject(select_display_names)}
