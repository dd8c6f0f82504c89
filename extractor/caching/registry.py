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
    _functions[cached.name] = cached


def find(name: str) -> CachedFunction | None:
    """The cached function called `name`, importing its module if need be."""
    return locate(name)[0]


def locate(name: str) -> tuple[CachedFunction | None, str]:
    """(the cached function, "") or (None, why it cannot be found)."""
    cached = _functions.get(name)
    if cached is not None:
        return cached, ""
    module_name, _, qualname = name.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        return None, f"module {module_name!r} cannot be imported here: {exc}"
    try:
        # Reaching the attribute lets a module build its functions lazily.
        for part in qualname.split("."):
            target = getattr(target, part)
    except AttributeError:
        return None, f"{module_name!r} has no {qualname!r} any more (renamed or removed?)"
    cached = _functions.get(name)
    if cached is None:
        return None, f"{name} is no longer decorated with @instructor_cache"
    return cached, ""


def registered() -> dict[str, CachedFunction]:
    return dict(_functions)
