"""Canonical bytes of a call's arguments: the part of a cache key each call adds.

Plain JSON conflates values that make different requests (an Enum and its raw
value, NaN and None, bytes and a str of the same text) and cannot hold others
at all (a dict with int keys). `encode_arguments` first maps the arguments to
a plain structure in which such values are type-tagged, then writes it as
sorted-key JSON with orjson.

Tags are single-key objects whose key is "$" and a name: {"$enum": [...]}.
A user's dict can hold the same key, so every key of a user's dict that starts
with "$" gets one more "$" ({"$enum": 1} is written {"$$enum": 1}). A key
starting with exactly one "$" is therefore always a tag, and a tag can never
be produced by user data. (Not a NUL-prefixed key: the arguments are stored
in a JSON column too, and PostgreSQL's jsonb refuses "\\u0000".)

What each type becomes:
- str, bool, None, finite float, int within 64 bits: itself (JSON).
- list and tuple: a list (f(("a", "b")) and f(["a", "b"]) send the same request).
- dict with str keys: a dict; any other dict: {"$dict": [[key, value], ...]}
  sorted by the encoded key, so {1: "a"} and {"1": "a"} differ and key order
  does not matter.
- set, frozenset: {"$set": [...]} sorted by the encoded item.
- NaN, inf, -inf: {"$float": "nan" | "inf" | "-inf"}; a larger int: {"$int": "<digits>"}.
- Decimal: {"$decimal": "19.9"}, normalised (trailing zeros dropped), so
  Decimal("19.9") and Decimal("19.90") share a key.
- bytes, bytearray, memoryview: {"$bytes": "<base64>"}.
- datetime, date, time, timedelta, UUID: tagged with their type.
- Enum: {"$enum": [class qualname, value]}; a class object (the `cls` of a
  classmethod): {"$class": "module:qualname"}.
- Pydantic model: {"$model": [qualname, every field (exclude=True ones too),
  extras]}; dataclass: {"$dataclass": [qualname, every field]}. Nested values
  are encoded the same way.
- an Instructor client (or an openai/anthropic client): {"$client": [...]},
  its mode, provider, default model and endpoint (see dependencies.py).
- pathlib.Path: {"$path": [path, digest of the file's content]}, so a file
  whose content changed misses. The digest is cached by the file's stat, so a
  repeated call costs a stat, not a read. A missing path, a directory (whose
  contents are NOT followed) or a special file gets a marker instead of a
  digest. A PurePath is only its text: {"$purepath": "..."}.
Anything else raises TypeError.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import orjson
from blake3 import blake3
from pydantic import BaseModel

from extractor.caching.dependencies import client_fingerprint
from extractor.caching.naming import module_name

# Top-level arguments of exactly these types go straight to orjson: the common
# call (one str) must not pay for a Python walk. These bytes are what the walk
# would produce too, so the two routes always agree.
FAST_TYPES = frozenset({str, int, bool, type(None)})

_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # orjson's int range
# Values the walk passes through untouched (int and float need a range check).
_LEAVES = frozenset({str, bool, type(None)})


def encode_arguments(values: Any) -> bytes:
    """Canonical, sorted-key JSON of type-tagged `values`; TypeError if one has no form."""
    # KeyBuilder.build inlines this first step for the call's own arguments.
    if type(values) is tuple:
        for value in values:
            if type(value) not in FAST_TYPES:
                break
        else:
            try:
                return _dumps(values)
            except TypeError:
                pass  # an int beyond 64 bits: the walk tags it
    return _encode_walked(values)


def _encode_walked(values: Any) -> bytes:
    try:
        return _dumps(_plain(values), option=_SORT_KEYS)
    except _NoForm:
        raise TypeError(_describe(values)) from None
    except RecursionError:
        raise TypeError("the value nests too deeply, or contains itself") from None


class _NoForm(TypeError):
    pass


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    encode = _BY_TYPE.get(kind)
    if encode is not None:
        return encode(value)
    return _plain_by_kind(value)


def _plain_by_kind(value: Any) -> Any:
    # Enum first: a StrEnum or IntEnum is also a str or an int.
    if isinstance(value, Enum):
        return {"$enum": [type(value).__qualname__, _plain(value.value)]}
    if isinstance(value, BaseModel):
        return _model(value)
    if isinstance(value, type):
        # module_name: a class of a script run as __main__ is the same class
        # when the script is imported.
        return {"$class": f"{module_name(value.__module__)}:{value.__qualname__}"}
    if isinstance(value, Path):
        return _path(value)
    if isinstance(value, PurePath):
        return {"$purepath": str(value)}
    if dataclasses.is_dataclass(value):
        return _dataclass(value)
    # Subclasses of the built-in types (a namedtuple, an OrderedDict, a str
    # subclass) stand for the same request as the built-in value.
    for base, encode in _SUBCLASSES:
        if isinstance(value, base):
            return encode(value)
    # An Instructor (or provider) client passed in: what about it shapes the
    # request (mode, provider, default model, endpoint), never its identity.
    client = client_fingerprint(value)
    if client is not None:
        return {"$client": client}
    raise _NoForm(value)


def _same(value: Any) -> Any:
    return value


def _str(value: str) -> str:
    return str.__str__(value)


def _int(value: int) -> Any:
    value = int(value)
    if _INT_MIN <= value <= _INT_MAX:
        return value
    return {"$int": str(value)}


def _float(value: float) -> Any:
    if math.isfinite(value):
        return float(value)
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


# A list of message dicts is a usual argument and every call with it pays for
# the walk: _list and _dict handle the commonest items inline, and a dict that
# is already plain is passed on without a copy.


def _list(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    plain: list[Any] = []
    append = plain.append
    for item in value:
        kind = type(item)
        if kind in _LEAVES:
            append(item)
        elif kind is dict:
            append(_dict(item))
        else:
            append(_plain(item))
    return plain


def _dict(value: dict[Any, Any]) -> Any:
    for key, item in value.items():
        if type(key) is not str or "$" <= key < "%" or type(item) not in _LEAVES:
            return _dict_copy(value)
    return value  # str keys, none starting with "$", plain values: orjson writes it as is


def _dict_copy(value: dict[Any, Any]) -> Any:
    plain: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str) or isinstance(key, Enum):
                return _pairs(value)
            key = str.__str__(key)
        if "$" <= key < "%":  # the key starts with "$", which is reserved for tags
            key = "$" + key
        kind = type(item)
        if kind in _LEAVES:
            plain[key] = item
        elif kind is dict:
            plain[key] = _dict(item)
        else:
            plain[key] = _plain(item)
    return plain


def _pairs(value: dict[Any, Any]) -> Any:
    pairs = [(_plain(key), _plain(item)) for key, item in value.items()]
    pairs.sort(key=_sort_key_of_pair)
    return {"$dict": [list(pair) for pair in pairs]}


def _sort_key_of_pair(pair: tuple[Any, Any]) -> tuple[bytes, bytes]:
    return _dumps(pair[0], option=_SORT_KEYS), _dumps(pair[1], option=_SORT_KEYS)


def _set(value: set[Any] | frozenset[Any]) -> Any:
    items = [_plain(item) for item in value]
    items.sort(key=_sort_key_of_item)
    return {"$set": items}


def _sort_key_of_item(item: Any) -> bytes:
    return _dumps(item, option=_SORT_KEYS)


def _bytes(value: bytes | bytearray | memoryview) -> Any:
    raw = value.tobytes() if isinstance(value, memoryview) else value
    return {"$bytes": base64.b64encode(raw).decode("ascii")}


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return {"$decimal": str(value)}
    # Not Decimal.normalize(): it rounds to the context's precision (28 digits).
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
    if digits[:kept] == (0,):
        return {"$decimal": "0"}  # -0 and 0.00 included: equal values, one key
    exponent += len(digits) - kept
    return {"$decimal": str(Decimal((sign, digits[:kept], exponent)))}


def _datetime(value: dt.datetime) -> Any:
    return {"$datetime": value.isoformat()}


def _date(value: dt.date) -> Any:
    return {"$date": value.isoformat()}


def _time(value: dt.time) -> Any:
    return {"$time": value.isoformat()}


def _timedelta(value: dt.timedelta) -> Any:
    return {"$timedelta": [value.days, value.seconds, value.microseconds]}


def _uuid(value: uuid.UUID) -> Any:
    return {"$uuid": str(value)}


def _model(value: BaseModel) -> Any:
    # Every field, not model_dump(): a field with exclude=True still shapes
    # what the function does with the argument. (A field model_construct()
    # left unset is absent, which differs from any value it could hold.)
    model = type(value)
    # What model_fields returns since pydantic 2.10, without its ~0.3 µs property.
    names = getattr(model, "__pydantic_fields__", None) or model.model_fields
    state = value.__dict__
    fields = _dict({name: state[name] for name in names if name in state})
    extra = value.__pydantic_extra__
    if extra:
        return {"$model": [model.__qualname__, fields, _dict(extra)]}
    return {"$model": [model.__qualname__, fields]}


def _dataclass(value: Any) -> Any:
    fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return {"$dataclass": [type(value).__qualname__, _dict(fields)]}


# Exact type -> encoder: one dict lookup for the usual values.
_BY_TYPE: dict[type, Callable[[Any], Any]] = {
    str: _same,
    bool: _same,
    type(None): _same,
    int: _int,
    float: _float,
    list: _list,
    tuple: _list,
    dict: _dict,
    set: _set,
    frozenset: _set,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
    Decimal: _decimal,
    dt.datetime: _datetime,
    dt.date: _date,
    dt.time: _time,
    dt.timedelta: _timedelta,
    uuid.UUID: _uuid,
}
# For subclasses, tried in order with isinstance: datetime before date.
_SUBCLASSES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (str, _str),
    *((base, encode) for base, encode in _BY_TYPE.items() if base is not str),
)


# -- paths: follow the file's content ------------------------------------------------

# (path, device, inode, size, mtime, ctime) -> content digest. The ctime moves
# on every write and cannot be set back by a user, unlike the mtime.
_digests: dict[tuple[str, int, int, int, int, int], str] = {}
_DIGESTS_KEPT = 4096
_digests_lock = threading.Lock()
# File timestamps tick at the kernel's clock granularity (milliseconds), so two
# writes of the same size in one tick look alike: a file changed this recently
# is read again rather than trusted to its stat.
_RECENT_NS = 2_000_000_000
_CHUNK = 1 << 20


def _path(value: Path) -> Any:
    name = os.fspath(value)
    try:
        status = os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        return {"$path": [name, "missing"]}
    except OSError:
        return {"$path": [name, "unreadable"]}
    if stat.S_ISDIR(status.st_mode):
        return {"$path": [name, "directory"]}
    if not stat.S_ISREG(status.st_mode):
        return {"$path": [name, "not a regular file"]}  # a FIFO could block a read
    identity = (
        name,
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )
    digest = _digests.get(identity)
    if digest is None:
        try:
            digest = _file_digest(name)
        except OSError:
            return {"$path": [name, "unreadable"]}
        if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) > _RECENT_NS:
            with _digests_lock:  # another thread's insert would break next(iter(...))
                if len(_digests) >= _DIGESTS_KEPT:
                    del _digests[next(iter(_digests))]
                _digests[identity] = digest
    return {"$path": [name, digest]}


def _file_digest(name: str) -> str:
    hasher = blake3()
    with open(name, "rb") as file:
        while chunk := file.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


# -- the error message: where the value without a form is ---------------------------


def _describe(value: Any) -> str:
    where, culprit = _locate(value, "")
    place = f" at {where}" if where else ""
    return f"{type(culprit).__qualname__}{place} has no canonical form"


def _locate(value: Any, where: str) -> tuple[str, Any]:
    for label, part in _parts(value):
        try:
            _plain(part)
        except _NoForm:
            return _locate(part, where + label)
    return where, value


def _parts(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Enum):
        return [(".value", value.value)]
    if isinstance(value, dict):
        keys = [(f" (key {key!r})", key) for key in value]
        return keys + [(f"[{key!r}]", item) for key, item in value.items()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [(f"[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, BaseModel):
        names = list(type(value).model_fields) + list(value.__pydantic_extra__ or ())
        return [(f".{name}", getattr(value, name)) for name in names]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            (f".{field.name}", getattr(value, field.name)) for field in dataclasses.fields(value)
        ]
    return []
