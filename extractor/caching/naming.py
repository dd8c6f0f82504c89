"""The stable name of a decorated function: "module:qualname", as it is imported.

A script run as `python users.py` defines its functions in `__main__`; the same
file imported elsewhere defines them in `users`. The cache must see one
function, so `__main__` is replaced by the name the file is imported under.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def function_name(func: Callable[..., Any]) -> str:
    return f"{module_name(func.__module__)}:{func.__qualname__}"


def owner_class(func: Callable[..., Any]) -> type | None:
    """The class a method is defined in, found through its qualified name."""
    parts = func.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    target: Any = sys.modules.get(func.__module__)
    for part in parts[:-1]:
        target = getattr(target, part, None)
    return target if isinstance(target, type) else None


def module_name(name: str) -> str:
    if name != "__main__":
        return name
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)  # python -m package.module
    filename = getattr(main, "__file__", None)
    if not filename:
        return name  # an interactive session or `python -c`: nothing better to say
    return _dotted_from_file(Path(os.path.realpath(filename)))


def _dotted_from_file(path: Path) -> str:
    """users.py -> "users"; pkg/users.py inside package `pkg` -> "pkg.users"."""
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts)
