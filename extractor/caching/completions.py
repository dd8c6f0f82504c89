"""The provider's response (openai's ChatCompletion, anthropic's Message) kept with a value.

A miss stores the response Instructor returned as JSON with its type; a hit
rebuilds it. Only Pydantic models from the provider SDKs on the allow-list are
stored or rebuilt: a stored type name is never an import of arbitrary code.

In the envelope it is one string (`PackedCompletion`), zlib-compressed and
base64-encoded: base64 has no quote, so a hit steps over it with one memchr
for its closing quote instead of searching it for the output, and nothing in
it can pass for the envelope's own `"output":` (see hit_reader); compressed,
it adds ~400 bytes to a value rather than ~760.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import zlib
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer, PlainValidator

from extractor.caching.errors import CorruptValue

# Top-level packages whose response models may be rebuilt from a stored type name.
PROVIDER_PACKAGES = frozenset({"openai", "anthropic"})
MAX_COMPLETION_BYTES = 16 * 1024 * 1024


class StoredCompletion(BaseModel):
    """A provider response as the envelope keeps it: its type and its JSON."""

    type: str  # "module:QualName"
    data: str


def pack(stored: StoredCompletion) -> str:
    # A type name has no newline: "type\ndata" needs no escaping, unlike JSON in JSON.
    text = f"{stored.type}\n{stored.data}".encode()
    return base64.b64encode(zlib.compress(text)).decode("ascii")


def unpack(value: Any) -> StoredCompletion:
    if isinstance(value, StoredCompletion):
        return value
    if not isinstance(value, str):
        raise ValueError("a stored provider response is a base64 string")
    try:
        inflate = zlib.decompressobj()
        # Bounded: a planted value must not inflate into gigabytes.
        text = inflate.decompress(base64.b64decode(value, validate=True), MAX_COMPLETION_BYTES)
        if inflate.unconsumed_tail:
            raise ValueError(f"a stored provider response is over {MAX_COMPLETION_BYTES} bytes")
        type_name, newline, data = text.decode().partition("\n")
    except (binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"a stored provider response does not unpack: {exc}") from exc
    if not newline:
        raise ValueError("a stored provider response has no type")
    return StoredCompletion(type=type_name, data=data)


PackedCompletion = Annotated[
    StoredCompletion, PlainValidator(unpack), PlainSerializer(pack, return_type=str)
]


def store_completion(completion: Any) -> StoredCompletion | None:
    """The stored form of `completion`, or None for a type that cannot be rebuilt."""
    if isinstance(completion, LazyCompletion):  # a cached call's, returned again
        try:
            completion = completion.rebuilt()
        except Exception:
            return None
    cls = type(completion)
    if not (isinstance(completion, BaseModel) and _allowed(cls.__module__)):
        return None
    if (
        "." in cls.__qualname__
        or getattr(importlib.import_module(cls.__module__), cls.__name__, None) is not cls
    ):
        return None  # not reachable by name, so a hit could not rebuild it
    # exclude_unset: the fields the provider sent, as SDKs build their models.
    data = completion.model_dump_json(exclude_unset=True)
    return StoredCompletion(type=f"{cls.__module__}:{cls.__qualname__}", data=data)


def rebuild_completion(stored: StoredCompletion) -> BaseModel:
    """The provider response `stored` was made from; CorruptValue if its type is not allowed."""
    module_name, _, name = stored.type.partition(":")
    if not _allowed(module_name) or not name or "." in name:
        raise CorruptValue(f"a stored provider response of type {stored.type!r} is not rebuilt")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise CorruptValue(f"the stored provider response type {stored.type!r} is gone") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise CorruptValue(f"{stored.type!r} is not a provider response model")
    return cls.model_validate_json(stored.data)


def _allowed(module_name: str) -> bool:
    return module_name.partition(".")[0] in PROVIDER_PACKAGES


class LazyCompletion:
    """`_raw_response` of a hit: the stored provider response, rebuilt on first use.

    Rebuilding a ChatCompletion costs several times a whole hit, and most
    callers never look, so a hit attaches this stand-in instead. Attribute
    reads (`.usage.prompt_tokens`, `.model`, `.model_dump()`) go to the rebuilt
    response; `rebuilt()` returns it. It is not an instance of the provider's
    class: code that needs one calls `rebuilt()`.
    """

    __slots__ = ("_envelope", "_rebuilt")

    def __init__(self, envelope: str | bytes) -> None:
        self._envelope = envelope
        self._rebuilt: BaseModel | None = None

    def rebuilt(self) -> BaseModel:
        if self._rebuilt is None:
            packed = json.loads(self._envelope)["completion"]
            self._rebuilt = rebuild_completion(unpack(packed))
        return self._rebuilt

    def __getattr__(self, name: str) -> Any:
        # Only names this class lacks get here; dunders stay this object's own, so
        # copy and pickle handle the stand-in rather than rebuilding the response
        # (and a slot not yet set while unpickling does not recurse).
        if name.startswith("__") or name in LazyCompletion.__slots__:
            raise AttributeError(name)
        try:
            completion = self.rebuilt()
        except Exception as exc:
            raise AttributeError(
                f"the cached provider response could not be rebuilt ({exc}); "
                "call the function inside `with bypass():` to get a fresh one"
            ) from exc
        return getattr(completion, name)

    def __repr__(self) -> str:
        try:
            return f"LazyCompletion({self.rebuilt()!r})"
        except Exception as exc:
            return f"LazyCompletion(<not rebuilt: {exc}>)"
