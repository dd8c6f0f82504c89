"""Typed readers for environment variables, so settings.py stays declarative."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Good for a laptop only: it is in the source, so anyone could sign sessions with it.
DEVELOPMENT_SECRET_KEY = "cachesite-insecure-local-development-key"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json(name: str, default: dict[str, Any]) -> dict[str, Any]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return value


def env_patterns(name: str) -> tuple[str, ...]:
    """Regular expressions, one a line or comma-separated; each checked to compile.

    A comma inside (), [] or {} or after a backslash belongs to its pattern, so
    `[A-Z]{16,}` stays whole.
    """
    raw = os.environ.get(name, "")
    items = raw.splitlines() if "\n" in raw else _split_top_level_commas(raw)
    patterns = tuple(item.strip() for item in items if item.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"{name}: {pattern!r} is not a valid regular expression ({exc}); fix or remove it."
            ) from None
    return patterns


def _split_top_level_commas(raw: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    depth, in_class, escaped = 0, False, False
    for char in raw:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "({":
            depth += 1
        elif char in ")}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items


def refuse_development_secret_key(*, debug: bool, secret_key: str) -> None:
    """Stop a production start (DEBUG off) that would sign with a key anyone can read.

    Called where the site starts serving (cachesite/wsgi.py, gunicorn's master), not in
    settings: management commands and the tests keep working on a laptop without a key.
    """
    if debug or secret_key not in {"", DEVELOPMENT_SECRET_KEY}:
        return
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is the development key) and DJANGO_DEBUG is off: "
        "refusing to serve with a key anyone can read. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, keep it secret and "
        "the same on every web process, and set it as DJANGO_SECRET_KEY "
        "(or set DJANGO_DEBUG=1 for local development)."
    )
