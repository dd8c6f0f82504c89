"""Cache keys: fingerprints of schema and code, and canonical argument encoding.

A key is SHA-256 over a canonical JSON of (namespace, function, code
fingerprint, version, schema fingerprint) followed by the canonical JSON of the
bound arguments. The static part is hashed once at decoration time; a call only
hashes its arguments into a copy of that state.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

import orjson
from pydantic import BaseModel

from extractor.caching.errors import ArgumentEncodingError

KEY_FORMAT = 1
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS
# Module-level constants a function reads (a prompt, a model name) are part of
# its behaviour, so they join the code fingerprint when they are plain values.
_PLAIN_CONSTANT_TYPES = (str, int, float, bool, bytes, type(None))


def canonical_json(value: Any) -> bytes:
    """Encode `value` as sorted-key JSON; raise TypeError for what has no JSON form."""
    return orjson.dumps(value, default=_encode_extra, option=_ORJSON_OPTIONS)


def _encode_extra(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=canonical_json)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__qualname__} has no canonical JSON form")


def schema_fingerprint(model: type[BaseModel]) -> tuple[str, dict[str, Any]]:
    """Fingerprint of the model's JSON schema: fields, types, defaults, descriptions."""
    schema = model.model_json_schema()
    return hashlib.sha256(canonical_json(schema)).hexdigest(), schema


def code_fingerprint(func: Callable[..., Any]) -> str:
    """Fingerprint of what the function does, ignoring its decorators and comments.

    Editing the prompt or the model name inside the function changes it; so does
    a module constant the function reads. Reformatting or a comment does not.
    """
    func = inspect.unwrap(func)
    parts: list[Any] = [_normalised_source(func) or _bytecode_summary(func.__code__)]
    parts.append(sorted(_plain_globals(func).items()))
    return hashlib.sha256(canonical_json(parts)).hexdigest()


def _normalised_source(func: Callable[..., Any]) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.decorator_list = []
            return ast.unparse(node)
    return source


def _bytecode_summary(code: types.CodeType) -> list[Any]:
    consts = [
        _bytecode_summary(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    ]
    return [code.co_code.hex(), consts, list(code.co_names)]


def _referenced_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _referenced_names(const)
    return names


def _plain_globals(func: Callable[..., Any]) -> dict[str, Any]:
    code = getattr(func, "__code__", None)
    module_globals: Mapping[str, Any] = getattr(func, "__globals__", {})
    if code is None:
        return {}
    found: dict[str, Any] = {}
    for name in _referenced_names(code):
        value = module_globals.get(name, _MISSING)
        if isinstance(value, _PLAIN_CONSTANT_TYPES):
            found[name] = value.hex() if isinstance(value, bytes) else value
    return found


_MISSING = object()


class ArgumentBinder:
    """Maps (args, kwargs) to one dict per call, defaults filled in.

    f(a, b=1), f(a, 1) and f(b=1, a=a) give the same dict. The common signature
    (no *args, **kwargs or positional-only parameters) takes a path that is a
    few times faster than inspect.Signature.bind.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        simple_kinds = {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
        self._simple = all(p.kind in simple_kinds for p in params)
        self._positional = tuple(
            p.name for p in params if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self._names = frozenset(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._count = len(params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._simple and len(args) <= len(self._positional):
            bound = dict(zip(self._positional, args, strict=False))
            if kwargs:
                if not kwargs.keys() <= self._names or not bound.keys().isdisjoint(kwargs):
                    return self._slow_bind(args, kwargs)
                bound.update(kwargs)
            if len(bound) < self._count:
                for name, default in self._defaults.items():
                    bound.setdefault(name, default)
                if len(bound) < self._count:
                    return self._slow_bind(args, kwargs)
            return bound
        return self._slow_bind(args, kwargs)

    def _slow_bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        # Raises the same TypeError the function itself would for a wrong call.
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


class KeyBuilder:
    """Builds the key of one call of one decorated function."""

    def __init__(
        self,
        *,
        func: Callable[..., Any],
        function_name: str,
        namespace: str,
        version: str,
        code_fingerprint: str,
        schema_fingerprint: str,
        key_function: Callable[..., Any] | None = None,
    ) -> None:
        self._function_name = function_name
        self._binder = ArgumentBinder(func)
        self._key_function = key_function
        static = canonical_json(
            {
                "format": KEY_FORMAT,
                "namespace": namespace,
                "function": function_name,
                "code": code_fingerprint,
                "version": version,
                "schema": schema_fingerprint,
            }
        )
        self._prefix = hashlib.sha256(static + b"\n")

    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bytes]:
        """Return (key, canonical JSON of the arguments)."""
        if self._key_function is not None:
            arguments: Any = self._key_function(*args, **kwargs)
            self._binder.bind(args, kwargs)  # still reject a call the function would reject
        else:
            arguments = self._binder.bind(args, kwargs)
        try:
            encoded = canonical_json(arguments)
        except TypeError as exc:
            raise self._encoding_error(arguments) from exc
        digest = self._prefix.copy()
        digest.update(encoded)
        return digest.hexdigest(), encoded

    def _encoding_error(self, arguments: Any) -> ArgumentEncodingError:
        if self._key_function is not None:
            return ArgumentEncodingError(
                f"The key function of {self._function_name} returned a "
                f"{type(arguments).__qualname__} that has no canonical JSON form; "
                "return str, numbers, lists, dicts or Pydantic models."
            )
        for name, value in arguments.items():
            try:
                canonical_json(value)
            except TypeError:
                return ArgumentEncodingError(
                    f"Argument {name!r} of {self._function_name} is a "
                    f"{type(value).__qualname__}, which cannot be part of a cache key. "
                    "Pass JSON-like values (str, numbers, lists, dicts, Pydantic models), "
                    "or give @instructor_cache(key=...) a function that returns one."
                )
        return ArgumentEncodingError(f"The arguments of {self._function_name} cannot be encoded.")
