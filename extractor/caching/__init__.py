"""The caching library: keys, envelope, backends, decorator. No Django in here."""

from extractor.caching.backends import (
    CacheBackend,
    DiskBackend,
    MemoryBackend,
    RedisBackend,
    backend_from_url,
)
from extractor.caching.decorator import (
    CachedFunction,
    bypass,
    call_labels,
    capture_calls,
    instructor_cache,
)
from extractor.caching.defaults import configure
from extractor.caching.errors import (
    ArgumentEncodingError,
    BackendUnavailable,
    CacheConfigurationError,
    KeyFault,
)
from extractor.caching.events import CallEvent, MissReason, Outcome, set_recorder

__all__ = [
    "ArgumentEncodingError",
    "BackendUnavailable",
    "CacheBackend",
    "CacheConfigurationError",
    "CachedFunction",
    "CallEvent",
    "DiskBackend",
    "KeyFault",
    "MemoryBackend",
    "MissReason",
    "Outcome",
    "RedisBackend",
    "backend_from_url",
    "bypass",
    "call_labels",
    "capture_calls",
    "configure",
    "instructor_cache",
    "set_recorder",
]
