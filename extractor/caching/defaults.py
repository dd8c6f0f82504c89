"""Process-wide defaults for decorated functions that name no backend.

Django's app config sets them from settings; a script without Django gets
EXTRACTOR_CACHE_URL from the environment, or a diskcache under ./.data/cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from extractor.caching.backends import CacheBackend, shared_backend


@dataclass(frozen=True)
class CacheDefaults:
    url: str
    ttl: float | None = None
    enabled: bool = True
    # After a backend failure, skip it for this long instead of paying a timeout per call.
    retry_after: float = 2.0


_defaults = CacheDefaults(url=os.environ.get("EXTRACTOR_CACHE_URL", "disk://.data/cache"))


def configure(**changes: object) -> CacheDefaults:
    """Change the defaults (url, ttl, enabled, retry_after); return the new ones."""
    global _defaults
    _defaults = replace(_defaults, **changes)  # type: ignore[arg-type]
    return _defaults


def current() -> CacheDefaults:
    return _defaults


def default_backend() -> CacheBackend:
    return shared_backend(_defaults.url)
