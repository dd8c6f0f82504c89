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


class CorruptValue(ValueError):
    """A stored value that is not a valid envelope for this function."""
