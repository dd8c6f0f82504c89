"""Cache keys: fingerprints of schema and code, and canonical argument encoding.

A key is a 256-bit hash of a canonical JSON of (namespace, function, code
fingerprint, version, schema fingerprint) followed by the canonical JSON of the
bound arguments. For the usual short arguments it is SHA-256, with the static
part hashed once (at the first call) and each call hashing only its arguments
into a copy of that state; long arguments use BLAKE3 (see LONG_ARGUMENTS).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import orjson
from blake3 import blake3
from pydantic import BaseModel

from extractor.caching.arguments import FAST_TYPES, encode_arguments
from extractor.caching.errors import ArgumentEncodingError

# 2: the code fingerprint follows what the function reads (dependencies.py).
KEY_FORMAT = 2
# Arguments this long (in canonical JSON bytes) are hashed with BLAKE3, shorter
# ones with SHA-256 into a copy of the prefix's state. Measured here (2 cores,
# SHA-NI): SHA-256 is faster up to about 4 KiB (1.4 vs 2.1 µs at 2 KB), BLAKE3
# beyond (4.8 vs 6.0 µs at 10 KB). The choice depends only on the bytes hashed,
# so a given call always gets the same key.
LONG_ARGUMENTS = 4096
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS


def canonical_json(value: Any) -> bytes:
    """Sorted-key JSON of a plain JSON value: a schema, the static key fields, or
    arguments as recorded. Argument values of a call go through encode_arguments,
    which gives everything else a canonical form."""
    return orjson.dumps(value, option=_ORJSON_OPTIONS)


def schema_fingerprint(model: type[BaseModel]) -> tuple[str, dict[str, Any]]:
    """Fingerprint of the model's JSON schema: fields, types, defaults, descriptions."""
    schema = model.model_json_schema()
    return hashlib.sha256(canonical_json(schema)).hexdigest(), schema


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
        call_state: Callable[[tuple[Any, ...]], bytes] | None = None,
    ) -> None:
        self._function_name = function_name
        self._call_state = call_state
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
        dumps, fast_types, encode = orjson.dumps, FAST_TYPES, self._encode
        key_function = self._key_function

        def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bytes]:
            if key_function is not None:
                bind(args, kwargs)  # still reject a call the function would reject
                encoded = encode(key_function(*args, **kwargs))
            else:
                if not kwargs and len(args) == positional_only_call:
                    arguments = args
                else:
                    arguments = bind(args, kwargs)
                # encode_arguments' own fast route, inlined: a call less on every hit.
                for value in arguments:
                    if type(value) not in fast_types:
                        encoded = encode(arguments)
                        break
                else:
                    try:
                        encoded = dumps(arguments)
                    except TypeError:  # an int beyond 64 bits, which the walk tags
                        encoded = encode(arguments)
            if len(encoded) < LONG_ARGUMENTS:
                digest = copy_prefix()
                digest.update(encoded)
                return digest.hexdigest(), encoded
            return blake3(static + encoded).hexdigest(), encoded

        call_state = self._call_state
        if call_state is None:
            return build

        def build_with_call_state(
            args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[str, bytes]:
            # What the function reads at call time (environment, settings, self)
            # joins the key; the arguments stored for display stay the call's own.
            key, encoded = build(args, kwargs)
            return blake3(key.encode() + b"\n" + call_state(args)).hexdigest(), encoded

        return build_with_call_state

    def _encode(self, arguments: Any) -> bytes:
        try:
            return encode_arguments(arguments)
        except TypeError as exc:
            raise self._encoding_error(arguments) from exc

    def _encoding_error(self, arguments: Any) -> ArgumentEncodingError:
        # Off the hit path: encode again, one argument at a time, to name the culprit.
        if self._key_function is not None:
            return ArgumentEncodingError(
                f"The key function of {self._function_name} returned a value that cannot "
                f"be part of a cache key: {_encoding_problem(arguments)}. {_ENCODABLE} "
                "Return one of those."
            )
        for name, value in zip(self._binder.names, arguments, strict=False):
            problem = _encoding_problem(value)
            if problem:
                return ArgumentEncodingError(
                    f"Argument {name!r} of {self._function_name} cannot be part of a cache "
                    f"key: {problem}. {_ENCODABLE} Pass one of those, or give "
                    "@instructor_cache(key=...) a function that returns one."
                )
        return ArgumentEncodingError(f"The arguments of {self._function_name} cannot be encoded.")


_ENCODABLE = (
    "A key can hold str, numbers, None, lists, tuples, dicts (any hashable keys), sets, "
    "Enums, Decimals, dates and times, UUIDs, bytes, Paths, dataclasses, classes and "
    "Pydantic models, nested in any way."
)


def _encoding_problem(value: Any) -> str:
    try:
        encode_arguments(value)
    except TypeError as exc:
        return str(exc)
    return ""
