"""Backends chosen by URL: memory://?maxsize=N, disk:///path, redis://host:port/db."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from extractor.caching.backends.base import CacheBackend
from extractor.caching.backends.disk import DiskBackend
from extractor.caching.backends.memory import MemoryBackend
from extractor.caching.backends.redis import DEFAULT_PREFIX, RedisBackend
from extractor.caching.errors import CacheConfigurationError

__all__ = [
    "CacheBackend",
    "DiskBackend",
    "MemoryBackend",
    "RedisBackend",
    "backend_from_url",
    "shared_backend",
]

_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_shared: dict[str, CacheBackend] = {}
_shared_lock = threading.Lock()


def backend_from_url(url: str) -> CacheBackend:
    """A new backend for `url`; raises CacheConfigurationError with the fix."""
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    if parts.scheme == "memory":
        return MemoryBackend(maxsize=_positive_int(query.pop("maxsize", "10000"), "maxsize", url))
    if parts.scheme == "disk":
        path = (parts.netloc + parts.path) or ""
        if not path:
            raise CacheConfigurationError(f"{url!r} names no directory; use disk:///absolute/path")
        size = query.pop("size_limit", None)
        return DiskBackend(
            Path(path).expanduser(),
            size_limit=_positive_int(size, "size_limit", url) if size else None,
        )
    if parts.scheme in _REDIS_SCHEMES:
        prefix = query.pop("prefix", DEFAULT_PREFIX)
        # Everything else in the query string is redis-py's own (db=, ssl_cert_reqs=, ...).
        rest = urlencode(query)
        # Not urlunsplit: it drops the "//" of unix:///path (no netloc), which redis-py refuses.
        plain = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
        return RedisBackend(plain, prefix=prefix)
    raise CacheConfigurationError(
        f"Unknown cache URL {_safe(url)!r}: use memory://?maxsize=N, disk:///path "
        "or redis://host:port/db"
    )


def shared_backend(url: str) -> CacheBackend:
    """One backend per URL in a process, so every function shares its pool."""
    backend = _shared.get(url)
    if backend is None:
        with _shared_lock:
            backend = _shared.get(url)
            if backend is None:
                backend = _shared[url] = backend_from_url(url)
    return backend


def _positive_int(raw: str | None, name: str, url: str) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        value = 0
    if value <= 0:
        raise CacheConfigurationError(f"{name} in {_safe(url)!r} must be a positive whole number")
    return value


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return url if parts.password is None else url.replace(parts.password, "***")
