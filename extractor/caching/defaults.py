"""Process-wide defaults for decorated functions that name no backend.

Django's app config sets them from settings; a script without Django gets
EXTRACTOR_CACHE_URL from the environment, or a diskcache under ./.data/cache.
The hit path reads these attributes directly, so they live on one object.
"""

from __future__ import annotations

import os
import threading

from extractor.caching.backends import CacheBackend, shared_backend
from extractor.caching.errors import CacheConfigurationError


def _lease_from_environment() -> float:
    """EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS, else the LLM timeout, else 60 s."""
    for name in ("EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS", "EXTRACTOR_LLM_TIMEOUT"):
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = float(raw)
            except ValueError:
                raise CacheConfigurationError(
                    f"{name} must be a number of seconds, not {raw!r}"
                ) from None
            if value <= 0:
                raise CacheConfigurationError(f"{name} must be positive, got {raw!r}")
            return value
    return 60.0


class CacheDefaults:
    def __init__(self) -> None:
        self.url = os.environ.get("EXTRACTOR_CACHE_URL", "disk://.data/cache")
        # How long a miss's cross-process lock lasts: a holder that dies blocks
        # the other processes at most this long (singleflight.py).
        self.single_flight_lease = _lease_from_environment()
        self.ttl: float | None = None
        self.enabled = True
        # After a connection-level failure (not one key's trouble), every function on
        # that backend skips it this long instead of paying a timeout per call.
        self.retry_after = 2.0
        self.backend: CacheBackend | None = None  # resolved from url on first use
        self._lock = threading.Lock()

    def resolve_backend(self) -> CacheBackend:
        with self._lock:
            if self.backend is None:
                self.backend = shared_backend(self.url)
            return self.backend


state = CacheDefaults()


def configure(
    *,
    url: str | None = None,
    ttl: float | object | None = ...,
    enabled: bool | None = None,
    retry_after: float | None = None,
    single_flight_lease: float | None = None,
) -> CacheDefaults:
    """Change the process defaults; arguments left out keep their value."""
    if url is not None and url != state.url:
        state.url = url
        state.backend = None
    if ttl is not ...:
        state.ttl = ttl  # type: ignore[assignment]
    if enabled is not None:
        state.enabled = enabled
    if retry_after is not None:
        state.retry_after = retry_after
    if single_flight_lease is not None:
        if single_flight_lease <= 0:
            raise CacheConfigurationError(
                f"the single-flight lease must be positive, got {single_flight_lease}"
            )
        state.single_flight_lease = float(single_flight_lease)
    return state


def current() -> CacheDefaults:
    return state


def default_backend() -> CacheBackend:
    return state.backend or state.resolve_backend()
