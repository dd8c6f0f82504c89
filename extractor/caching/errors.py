"""Exceptions the caching library raises to its callers.

Only programming errors reach the caller (a bad decorator option, an argument
that cannot be part of a key); backend trouble never does.
"""

from __future__ import annotations


class CacheConfigurationError(ValueError):
    """A decorator option or backend URL that cannot work."""


class ArgumentEncodingError(TypeError):
    """An argument that has no canonical JSON form, so it cannot be part of a key."""


class BackendError(Exception):
    """A backend could not serve a read or a write."""


class BackendUnavailable(BackendError):
    """The backend as a whole cannot be reached: a refused, reset or timed-out
    connection, a cache directory that cannot be opened. Callers skip the backend
    for a cool-down instead of paying a timeout per call."""


class KeyFault(BackendError):
    """Trouble confined to one key or one call (a write refused because Redis is
    full or read-only, a directory recreated under the call): that call misses
    and the error is recorded; the backend stays in use for every other key."""


class CorruptValue(ValueError):
    """A stored value that is not a valid envelope for this function."""
