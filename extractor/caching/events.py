"""What the decorator reports about each call, and where it reports it.

The library does not know about Django: it hands a `CallEvent` to whatever
recorder is installed (the app installs one that writes to its database).
Reporting must cost next to nothing on a hit, so an event holds references
only; anything derived (previews, reasons) is worked out by the recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson
from pydantic import BaseModel

from extractor.caching.envelope import Envelope
from extractor.caching.usage import Usage


class Outcome:
    HIT = "hit"
    MISS = "miss"
    ERROR = "error"
    BYPASS = "bypass"
    REPLAY = "replay"


class MissReason:
    """Why a call missed, where the library knows; the recorder works out the rest."""

    NEW_INPUT = "new_input"
    SCHEMA_CHANGED = "schema_changed"
    CODE_CHANGED = "code_changed"
    VERSION_CHANGED = "version_changed"
    # Same arguments, code and version: what the function reads at call time
    # (environment, settings, the instance) has changed.
    STATE_CHANGED = "state_changed"
    MODEL_CHANGED = "model_changed"
    EXPIRED = "expired"
    EVICTED = "evicted"
    INVALIDATED = "invalidated"
    CORRUPT = "corrupt"
    BACKEND_ERROR = "backend_error"


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """Everything static about one decorated function, computed once."""

    name: str  # "module:qualname", importable
    namespace: str
    version: str
    code_fingerprint: str
    schema_name: str  # dotted path of the response model
    schema_fingerprint: str
    json_schema: dict[str, Any] = field(repr=False, compare=False)
    backend_label: str = ""
    ttl: float | None = None
    has_key_function: bool = False
    model_argument: str | None = None  # name of the argument that picks the LLM model
    response_model: type[BaseModel] | None = field(default=None, repr=False, compare=False)
    parameter_names: tuple[str, ...] = ()

    def arguments_of(self, arguments_json: bytes) -> Any:
        """The stored arguments by name (or as the key function returned them)."""
        values = orjson.loads(arguments_json)
        if self.has_key_function or len(values) != len(self.parameter_names):
            return values
        return dict(zip(self.parameter_names, values, strict=True))


@dataclass(slots=True)
class CallEvent:
    outcome: str
    info: FunctionInfo
    key: str
    arguments_json: bytes
    started: float  # time.perf_counter() at the start of the call
    latency: float  # seconds
    envelope: Envelope[Any] | None = None
    stored: bool = False
    miss_reason: str | None = None
    error: str | None = None
    ttl: float | None = None  # what a stored value was given
    # The tokens a call that raised was billed (every failed attempt of a retry
    # is a paid completion); a call that returned has them in its envelope.
    usage: Usage | None = None
    # What call_labels() said about the call (e.g. "document": the sha256 of the
    # context document it was sent with); shared, never mutated.
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def tokens(self) -> Usage:
        """What the call cost the provider: its envelope's usage, or what an error billed."""
        if self.envelope is not None:
            return self.envelope.usage
        return self.usage if self.usage is not None else Usage()


# A hit is recorded as a bare tuple (function, key, started, latency): a hit
# process keeps up to a buffer's worth of them alive, and small tuples keep the
# allocator's hot memory hot (a dataclass here made hits ~40% slower).
HitRecord = tuple[FunctionInfo, str, float, float]


class CoalescedHit(NamedTuple):
    """A hit served by another caller's computation: this caller missed, waited for
    the thread, task or process computing the key, and got its value without an
    LLM call of its own. A tuple like HitRecord (code that reads hits reads these),
    told apart by its type, so plain hits stay bare tuples."""

    info: FunctionInfo
    key: str
    started: float
    latency: float


Record = CallEvent | HitRecord | CoalescedHit


class Recorder(Protocol):
    def record(self, event: Record) -> None: ...

    def flush(self) -> int | None: ...


class NullRecorder:
    """Records nothing: the library works without Django."""

    def record(self, event: Record) -> None:
        return None

    def flush(self) -> None:
        return None


class _RecorderSlot:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        # The bound method itself, so a hit pays one call and no attribute lookups.
        self.record = recorder.record


recorder_slot = _RecorderSlot(NullRecorder())


def set_recorder(recorder: Recorder) -> Recorder:
    """Install `recorder` for every decorated function; return the one it replaces."""
    previous = recorder_slot.recorder
    recorder_slot.recorder = recorder
    recorder_slot.record = recorder.record
    return previous


def get_recorder() -> Recorder:
    return recorder_slot.recorder


# perf_counter() is cheap and monotonic; the wall clock is derived at write time.
_WALL_OFFSET = time.time() - time.perf_counter()


def wall_time(perf_counter_value: float) -> float:
    return _WALL_OFFSET + perf_counter_value


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__qualname__
    return f"{name}: {text}" if text else name
