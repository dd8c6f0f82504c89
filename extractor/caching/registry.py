"""Every function decorated in this process, by "module:qualname".

Replay finds the function behind an entry here first, then by import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from extractor.caching.decorator import CachedFunction

_functions: dict[str, CachedFunction] = {}


def register(cached: CachedFunction) -> None:
    _functions[cached.info.name] = cached


def find(name: str) -> CachedFunction | None:
    """The cached function called `name`, importing its module if need be."""
    cached = _functions.get(name)
    if cached is not None:
        return cached
    module_name, _, _qualname = name.partition(":")
    try:
        importlib.import_module(module_name)
    except ImportError:
        return None
    return _functions.get(name)


def registered() -> dict[str, CachedFunction]:
    return dict(_functions)
