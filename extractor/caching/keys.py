"""Cache keys: fingerprints of schema and code, and canonical argument encoding.

A key is a 256-bit hash of a canonical JSON of (namespace, function, code
fingerprint, version, schema fingerprint) followed by the canonical JSON of the
bound arguments. For the usual short arguments it is SHA-256, with the static
part hashed once at decoration time and each call hashing only its arguments
into a copy of that state; long arguments use BLAKE3 (see LONG_ARGUMENTS).
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
from blake3 import blake3
from pydantic import BaseModel

from extractor.caching.errors import ArgumentEncodingError

KEY_FORMAT = 1
# Arguments this long (in canonical JSON bytes) are hashed with BLAKE3, which
# is about twice as fast as SHA-256 on a 10 kB document; shorter ones with
# SHA-256, which is faster there. The choice depends only on the bytes hashed,
# so a given call always gets the same key.
LONG_ARGUMENTS = 1024
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
    """Maps (args, kwargs) to the argument values in parameter order, defaults filled.

    f(a, b=1), f(a, 1) and f(b=1, a=a) all give (a, 1). A call that passes
    every parameter positionally, the common case, costs one length check.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self._count = len(params)
        self._positional_count = sum(
            p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params
        )
        simple_kinds = {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
        self._simple = all(p.kind in simple_kinds for p in params)
        self._defaults = tuple(p.default for p in params)
        # A call passing exactly this many positional arguments needs no binding
        # (-1 when the signature has *args, **kwargs or keyword-only parameters).
        self.all_positional_count = self._count if self._positional_count == self._count else -1

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if not kwargs and len(args) == self._positional_count == self._count:
            return args
        if not self._simple or len(args) > self._positional_count:
            return self._general_bind(args, kwargs)
        values = list(args)
        unused = len(kwargs)
        for index in range(len(args), self._count):
            name = self.names[index]
            if name in kwargs:
                values.append(kwargs[name])
                unused -= 1
            elif self._defaults[index] is not inspect.Parameter.empty:
                values.append(self._defaults[index])
            else:
                return self._general_bind(args, kwargs)  # raises: missing argument
        if unused:
            return self._general_bind(args, kwargs)  # raises: unknown or repeated keyword
        return tuple(values)

    def _general_bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        # Raises the same TypeError the function itself would for a wrong call.
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        # One value per parameter, in order: *args as a list, **kwargs as a dict.
        return tuple(bound.arguments.values())


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
        self._static = static + b"\n"
        self._prefix = hashlib.sha256(self._static)

        self.build = self._make_build()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self._binder.names

    def _make_build(self) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, bytes]]:
        """build(args, kwargs) -> (key, canonical JSON of the argument values in order).

        A closure over local names: this runs on every hit.
        """
        bind = self._binder.bind
        positional_only_call = self._binder.all_positional_count
        copy_prefix = self._prefix.copy
        static = self._static
        dumps, default, option = orjson.dumps, _encode_extra, _ORJSON_OPTIONS
        encoding_error = self._encoding_error
        key_function = self._key_function

        def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bytes]:
            if key_function is not None:
                bind(args, kwargs)  # still reject a call the function would reject
                arguments: Any = key_function(*args, **kwargs)
            elif not kwargs and len(args) == positional_only_call:
                arguments = args
            else:
                arguments = bind(args, kwargs)
            try:
                encoded = dumps(arguments, default=default, option=option)
            except TypeError as exc:
                raise encoding_error(arguments) from exc
            if len(encoded) < LONG_ARGUMENTS:
                digest = copy_prefix()
                digest.update(encoded)
                return digest.hexdigest(), encoded
            return blake3(static + encoded).hexdigest(), encoded

        return build

    def _encoding_error(self, arguments: Any) -> ArgumentEncodingError:
        if self._key_function is not None:
            return ArgumentEncodingError(
                f"The key function of {self._function_name} returned a "
                f"{type(arguments).__qualname__} that has no canonical JSON form; "
                "return str, numbers, lists, dicts or Pydantic models."
            )
        for name, value in zip(self._binder.names, arguments, strict=False):
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
