"""`@instructor_cache`: a correct, fast, fail-open cache for Instructor calls.

The key follows the function, its code, an explicit version, its bound
arguments and the response model's schema. A hit is one backend read and one
Rust-side validation; everything else (recording, bookkeeping) is deferred to
the installed recorder. A backend that fails is skipped, never raised.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from time import perf_counter, time
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from extractor.caching import defaults as _defaults
from extractor.caching.backends import CacheBackend, shared_backend
from extractor.caching.backends.base import first_report
from extractor.caching.dependencies import Dependencies, follow, own_code_fingerprint
from extractor.caching.envelope import (
    Envelope,
    UnstorableResult,
    envelope_for,
    envelope_type,
    hit_reader,
)
from extractor.caching.errors import BackendError, CacheConfigurationError, CorruptValue, KeyFault
from extractor.caching.events import (
    CallEvent,
    CoalescedHit,
    FunctionInfo,
    MissReason,
    Outcome,
    Record,
    describe_error,
    recorder_slot,
)
from extractor.caching.keys import KeyBuilder, schema_fingerprint
from extractor.caching.naming import function_name, owner_class
from extractor.caching.registry import register, registered
from extractor.caching.singleflight import (
    AsyncSingleFlight,
    SingleFlight,
    arun_shared,
    run_shared,
)
from extractor.caching.usage import billed_usage

logger = logging.getLogger("extractor.caching")

F = TypeVar("F", bound=Callable[..., Any])
Arguments = tuple[tuple[Any, ...], dict[str, Any]]


class _Scope:
    """What bypass(), capture_calls() and call_labels() ask of the calls in their block.

    One context variable for all three, so a hit pays a single lookup for them.
    """

    __slots__ = ("bypass", "labels", "sink")

    def __init__(
        self, bypass: bool, sink: list[Record] | None, labels: dict[str, str] | None
    ) -> None:
        self.bypass = bypass
        self.sink = sink
        self.labels = labels


_scope: ContextVar[_Scope | None] = ContextVar("instructor_cache_scope", default=None)


def _enter_scope(
    *,
    bypass: bool | None = None,
    sink: list[Record] | None = None,
    labels: dict[str, str] | None = None,
) -> Token[Any]:
    outer = _scope.get()
    outer_labels = outer.labels if outer else None
    if labels is not None and outer_labels:
        labels = {**outer_labels, **labels}  # the inner block's labels win
    return _scope.set(
        _Scope(
            bypass=bypass if bypass is not None else bool(outer and outer.bypass),
            sink=sink if sink is not None else (outer.sink if outer else None),
            labels=labels if labels is not None else outer_labels,
        )
    )


@contextmanager
def bypass() -> Iterator[None]:
    """Within this block decorated calls skip the cache (recorded as "bypass")."""
    token = _enter_scope(bypass=True)
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def capture_calls() -> Iterator[list[Record]]:
    """Collect the records of decorated calls made within this block.

    A hit is a HitRecord tuple (function, key, started, latency), a CoalescedHit
    (the same fields) when another caller computed the value; anything else is a
    CallEvent.
    """
    events: list[Record] = []
    token = _enter_scope(sink=events)
    try:
        yield events
    finally:
        _scope.reset(token)


@contextmanager
def call_labels(**labels: str) -> Iterator[None]:
    """Label the decorated calls made within this block (CallEvent.labels).

    For what the cache key does not say but the dashboard groups by, such as
    the context document a call was sent with (`document=<sha256>`). Blocks
    nest (the inner one's labels win over the outer's); a context variable
    carries them, so they follow async tasks and stay out of other threads.
    Hits are recorded without labels: they cost no tokens.
    """
    for name, value in labels.items():
        if not isinstance(value, str):
            raise TypeError(f"call_labels: {name} must be a str, not {type(value).__name__}")
    token = _enter_scope(labels=dict(labels))
    try:
        yield
    finally:
        _scope.reset(token)


@overload
def instructor_cache(func: F, /) -> F: ...


@overload
def instructor_cache(
    *,
    backend: CacheBackend | str | None = None,
    ttl: float | None = None,
    version: str | int | None = None,
    namespace: str = "",
    key: Callable[..., Any] | None = None,
    model_argument: str | None = "model",
) -> Callable[[F], F]: ...


def instructor_cache(
    func: Callable[..., Any] | None = None,
    /,
    *,
    backend: CacheBackend | str | None = None,
    ttl: float | None = None,
    version: str | int | None = None,
    namespace: str = "",
    key: Callable[..., Any] | None = None,
    model_argument: str | None = "model",
) -> Any:
    """Cache a function whose return annotation is a Pydantic model.

    backend: a CacheBackend, a URL (memory://, disk://, redis://) or None for
        the process default (EXTRACTOR_CACHE_URL).
    ttl: seconds a value lives; None for the default.
    version: bump to drop every entry of this function at once.
    namespace: separates caches that share a backend (tenants, environments).
    key: builds the key's argument part from the call's arguments, for
        arguments that have no JSON form (a client object, self).
    model_argument: the argument that names the LLM model, so a miss caused by
        a new model is reported as such.
    """
    options = CacheOptions(backend, ttl, version, namespace, key, model_argument)
    if func is not None:
        return _decorate(func, options)
    return lambda f: _decorate(f, options)


def _decorate(func: Any, options: CacheOptions) -> Any:
    # Above @classmethod or @staticmethod: cache the function inside and wrap it
    # again, so the class still binds it as it would without the cache.
    if isinstance(func, (classmethod, staticmethod)):
        return type(func)(CachedFunction(func.__func__, options).wrapper)
    if not callable(func):
        raise TypeError(
            "instructor_cache takes the function to cache, or keyword options only: "
            f"@instructor_cache(backend={func!r}) rather than @instructor_cache({func!r})"
        )
    return CachedFunction(func, options).wrapper


class CacheOptions:
    def __init__(
        self,
        backend: CacheBackend | str | None,
        ttl: float | None,
        version: str | int | None,
        namespace: str,
        key: Callable[..., Any] | None,
        model_argument: str | None,
    ) -> None:
        if backend is not None and not isinstance(backend, (str, CacheBackend)):
            raise TypeError(
                f"backend must be a URL or a CacheBackend, not {type(backend).__name__}"
            )
        if isinstance(backend, str):
            backend = shared_backend(backend)  # a bad URL fails here, at decoration
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
                raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
            if ttl <= 0:
                raise CacheConfigurationError(f"ttl must be positive, got {ttl}")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, (str, int))
        ):
            raise TypeError(f"version must be a str or int, not {type(version).__name__}")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
        if key is not None and not callable(key):
            raise TypeError(f"key must be a function of the call's arguments, not {key!r}")
        self.backend: CacheBackend | None = backend
        self.ttl = float(ttl) if ttl is not None else None
        self.version = "" if version is None else str(version)
        self.namespace = namespace
        self.key_function = key
        self.model_argument = model_argument


def response_model_of(func: Callable[..., Any]) -> type[BaseModel]:
    name = getattr(func, "__qualname__", repr(func))
    try:
        annotation = _return_annotation(func)
    except Exception as exc:
        raise TypeError(
            f"@instructor_cache could not resolve the return annotation of {name}: {exc}. "
            "Define the response model before the decorated function."
        ) from exc
    if typing.get_origin(annotation) is tuple:
        # create_with_completion's (model, completion): the model is the response model.
        items = typing.get_args(annotation)
        model = items[0] if len(items) == 2 else None
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        shown = "no return annotation" if annotation is None else f"-> {annotation!r}"
        raise TypeError(
            f"@instructor_cache needs {name} to be annotated as returning a Pydantic "
            f"BaseModel subclass (-> MyModel), or create_with_completion's pair "
            f"(-> tuple[MyModel, Any]); it has {shown}."
        )
    return annotation


def _return_annotation(func: Callable[..., Any]) -> Any:
    """The return annotation alone, resolved: an argument annotated with a class
    local to the caller must not stop the decoration (only the return matters)."""
    annotation = getattr(func, "__annotations__", {}).get("return")
    if not isinstance(annotation, str):
        return annotation
    namespace = dict(getattr(func, "__globals__", {}))
    code = getattr(func, "__code__", None)
    for name, cell in zip(
        code.co_freevars if code else (), getattr(func, "__closure__", None) or (), strict=False
    ):
        with contextlib.suppress(ValueError):  # an empty cell
            namespace[name] = cell.cell_contents
    return eval(annotation, namespace)  # the annotation's own text, as typing would


class CachedFunction:
    """The cache around one function; `wrapper` is what the decorator returns."""

    def __init__(self, func: Callable[..., Any], options: CacheOptions) -> None:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("@instructor_cache cannot cache a generator; return a model instead")
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        self.response_model = response_model_of(func)
        self.envelope_type = envelope_type(self.response_model)
        self.options = options
        schema_fp, json_schema = schema_fingerprint(self.response_model)
        self.name = function_name(func)
        self._schema = (schema_fp, json_schema)
        self._prepare_lock = threading.Lock()
        self._prepared: tuple[FunctionInfo, KeyBuilder] | None = None
        self.dependencies: Dependencies | None = None
        self._read_hit = hit_reader(self.response_model, schema_fp)
        # The cool-down after a connection-level failure: until when, why, and of
        # which backend (a default pointed elsewhere meanwhile is used at once).
        self._down_until = 0.0
        self._down_error = ""
        self._down_backend: CacheBackend | None = None
        self._flight = SingleFlight()
        self._async_flight = AsyncSingleFlight()
        self.wrapper = self._async_wrapper() if self.is_async else self._sync_wrapper()
        self.wrapper.cache = self  # type: ignore[attr-defined]
        register(self)

    # -- what the key follows, worked out at the first call -------------------------

    @property
    def info(self) -> FunctionInfo:
        return (self._prepared or self._prepare())[0]

    @property
    def keys(self) -> KeyBuilder:
        return (self._prepared or self._prepare())[1]

    def _prepare(self, args: tuple[Any, ...] = ()) -> tuple[FunctionInfo, KeyBuilder]:
        """Fingerprint the function and what it reads, once.

        Not at decoration: a helper defined below the decorated function, or a
        module the function reads that is still importing, is only there once
        the first call comes.
        """
        with self._prepare_lock:
            if self._prepared is None:
                self._prepared = self._fingerprint(args)
            return self._prepared

    def followed(self) -> list[str]:
        """The functions and classes the key follows ("module:qualname"), in walk order."""
        self.keys  # noqa: B018  (prepares)
        return list(self.dependencies.described) if self.dependencies else []

    def _fingerprint(self, args: tuple[Any, ...]) -> tuple[FunctionInfo, KeyBuilder]:
        func, options = self.func, self.options
        parameters = inspect.signature(func).parameters
        first = next(iter(parameters), None)
        owner = owner_class(func)
        if owner is None and first in ("self", "cls") and args:
            owner = args[0] if isinstance(args[0], type) else type(args[0])
        try:
            dependencies = follow(
                func,
                response_model=self.response_model,
                method_of=owner,
                # key=lambda self, text: text leaves the instance out of the arguments;
                # what the method reads off it must still join the key.
                read_self_state=options.key_function is not None and first == "self",
            )
        except Exception:
            # The walk must never break the caller: key on the function's own
            # code, and say so (version= covers what the walk could not see).
            logger.exception("could not follow what %s reads; keying on its code only", self.name)
            dependencies = Dependencies(fingerprint=own_code_fingerprint(func))
        self.dependencies = dependencies
        schema_fp, json_schema = self._schema
        info = FunctionInfo(
            name=self.name,
            namespace=options.namespace,
            version=options.version,
            code_fingerprint=dependencies.fingerprint,
            schema_name=f"{self.response_model.__module__}.{self.response_model.__qualname__}",
            schema_fingerprint=schema_fp,
            json_schema=json_schema,
            backend_label=options.backend.label if options.backend is not None else "",
            ttl=options.ttl,
            has_key_function=options.key_function is not None,
            model_argument=options.model_argument if options.model_argument in parameters else None,
            response_model=self.response_model,
            parameter_names=tuple(parameters),
        )
        keys = KeyBuilder(
            func=func,
            function_name=info.name,
            namespace=options.namespace,
            version=options.version,
            code_fingerprint=info.code_fingerprint,
            schema_fingerprint=schema_fp,
            key_function=options.key_function,
            call_state=dependencies.reader(),
        )
        return info, keys

    # -- the hit path: keep it lean, it runs millions of times ----------------------

    def _lookup(self, raw: str | bytes | None, key: str) -> tuple[Any, str | None, str | None]:
        """(output, miss reason, error) for what the backend returned."""
        if raw is None:
            return None, None, None
        try:
            return self._read_hit(raw), None, None
        except Exception as exc:
            return (None, *self._corrupt(exc, key))

    def _corrupt(self, exc: BaseException, key: str) -> tuple[str, str]:
        logger.warning("corrupt cache value for %s (%s); recomputing", self.info.name, key)
        return MissReason.CORRUPT, describe_error(exc)

    def _sync_wrapper(self) -> Callable[..., Any]:
        # Everything the hit path touches is a local of this closure: attribute
        # and global lookups are a measurable share of a ~5 µs hit.
        build_key: Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, bytes]] | None = None
        info: FunctionInfo = None  # type: ignore[assignment]  # set with build_key
        prepare = self._prepare
        fixed_backend = self.options.backend
        state = _defaults.state
        current_scope = _scope.get
        read_hit = self._read_hit
        slot = recorder_slot

        @functools.wraps(self.func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal build_key, info
            started = perf_counter()
            if build_key is None:
                info, keys = prepare(args)
                build_key = keys.build
            key, arguments = build_key(args, kwargs)
            scope = current_scope()
            if not state.enabled or (scope is not None and scope.bypass):
                return self._call_uncached(args, kwargs, key, arguments, started, Outcome.BYPASS)
            reason: str | None = None
            error: str | None = None
            if started < self._down_until and self._cooling_down(started):
                reason, error = MissReason.BACKEND_ERROR, self._down_error
            else:
                try:
                    # "is not None": an empty MemoryBackend is falsy (it has __len__).
                    backend = (
                        fixed_backend
                        if fixed_backend is not None
                        else (state.backend or state.resolve_backend())
                    )
                    raw = backend.get(key)
                except Exception as exc:
                    raw = None
                    reason, error = self._backend_failed(exc, started)
                if raw is not None:
                    try:
                        output = read_hit(raw)
                    except Exception as exc:
                        reason, error = self._corrupt(exc, key)
                    else:
                        hit = (info, key, started, perf_counter() - started)
                        if scope is not None and scope.sink is not None:
                            scope.sink.append(hit)
                        try:
                            slot.record(hit)
                        except Exception:  # recording is best effort
                            logger.exception("could not record a call of %s", info.name)
                        return output
            return self._miss((args, kwargs), key, arguments, started, reason, error)

        return wrapper

    def _async_wrapper(self) -> Callable[..., Any]:
        build_key: Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, bytes]] | None = None
        info: FunctionInfo = None  # type: ignore[assignment]  # set with build_key
        prepare = self._prepare
        fixed_backend = self.options.backend
        state = _defaults.state
        current_scope = _scope.get
        lookup = self._lookup

        @functools.wraps(self.func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal build_key, info
            started = perf_counter()
            if build_key is None:
                info, keys = prepare(args)
                build_key = keys.build
            key, arguments = build_key(args, kwargs)
            scope = current_scope()
            if not state.enabled or (scope is not None and scope.bypass):
                return await self._acall_uncached(
                    args, kwargs, key, arguments, started, Outcome.BYPASS
                )
            reason: str | None = None
            error: str | None = None
            if started < self._down_until and self._cooling_down(started):
                reason, error = MissReason.BACKEND_ERROR, self._down_error
            else:
                try:
                    backend = (
                        fixed_backend
                        if fixed_backend is not None
                        else (state.backend or state.resolve_backend())
                    )
                    raw = await backend.aget(key)
                except Exception as exc:
                    reason, error = self._backend_failed(exc, started)
                else:
                    output, reason, error = lookup(raw, key)
                    if output is not None:
                        self._record((info, key, started, perf_counter() - started))
                        return output
            return await self._amiss((args, kwargs), key, arguments, started, reason, error)

        return wrapper

    # -- misses ---------------------------------------------------------------------

    def _miss(
        self,
        call: Arguments,
        key: str,
        arguments: bytes,
        started: float,
        reason: str | None,
        error: str | None,
    ) -> Any:
        def compute(note: str | None) -> Any:
            result = self._run(call, key, arguments, started, reason)
            envelope = self._envelope_for(result, started)
            stored, set_error = False, None
            if envelope is not None and self._backend_usable():
                backend = self.backend()
                try:
                    backend.set(key, envelope.model_dump_json(), self.ttl())
                except Exception as exc:
                    set_error = self._backend_failed(exc, perf_counter())[1]
                else:
                    stored = True
                    backend.mark_working()
            self._record_miss(
                key, arguments, started, envelope, stored, reason, error or note, set_error
            )
            return result

        def compute_across_processes() -> tuple[Any, bool]:
            # This process's one caller for the key (the threads coalesced already).
            backend = self.backend()
            if not backend.shares_flights or not self._backend_usable():
                return compute(None), False
            lease = _defaults.state.single_flight_lease
            return run_shared(backend, key, compute, self._read_hit, lease=lease)

        (result, elsewhere), shared = self._flight.run(key, compute_across_processes)
        if shared or elsewhere:
            self._record_shared(key, started)
        return result

    async def _amiss(
        self,
        call: Arguments,
        key: str,
        arguments: bytes,
        started: float,
        reason: str | None,
        error: str | None,
    ) -> Any:
        async def compute(note: str | None) -> Any:
            result = await self._arun(call, key, arguments, started, reason)
            envelope = self._envelope_for(result, started)
            stored, set_error = False, None
            if envelope is not None and self._backend_usable():
                backend = self.backend()
                try:
                    await backend.aset(key, envelope.model_dump_json(), self.ttl())
                except Exception as exc:
                    set_error = self._backend_failed(exc, perf_counter())[1]
                else:
                    stored = True
                    backend.mark_working()
            self._record_miss(
                key, arguments, started, envelope, stored, reason, error or note, set_error
            )
            return result

        async def compute_across_processes() -> tuple[Any, bool]:
            backend = self.backend()
            if not backend.shares_flights or not self._backend_usable():
                return await compute(None), False
            lease = _defaults.state.single_flight_lease
            return await arun_shared(backend, key, compute, self._read_hit, lease=lease)

        (result, elsewhere), shared = await self._async_flight.run(key, compute_across_processes)
        if shared or elsewhere:
            self._record_shared(key, started)
        return result

    def _run(
        self, call: Arguments, key: str, arguments: bytes, started: float, reason: str | None
    ) -> Any:
        try:
            return self.func(*call[0], **call[1])
        except Exception as exc:
            self._record_error(key, arguments, started, reason, exc)
            raise

    async def _arun(
        self, call: Arguments, key: str, arguments: bytes, started: float, reason: str | None
    ) -> Any:
        try:
            return await self.func(*call[0], **call[1])
        except Exception as exc:
            self._record_error(key, arguments, started, reason, exc)
            raise

    def _call_uncached(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        outcome: str,
    ) -> Any:
        result = self._run((args, kwargs), key, arguments, started, None)
        self._record_uncached(result, key, arguments, started, outcome)
        return result

    async def _acall_uncached(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        outcome: str,
    ) -> Any:
        result = await self._arun((args, kwargs), key, arguments, started, None)
        self._record_uncached(result, key, arguments, started, outcome)
        return result

    def _record_uncached(
        self, result: Any, key: str, arguments: bytes, started: float, outcome: str
    ) -> None:
        envelope = self._envelope_for(result, started)
        latency = perf_counter() - started
        self._record(CallEvent(outcome, self.info, key, arguments, started, latency, envelope))

    def _envelope_for(self, result: Any, started: float) -> Envelope[Any] | None:
        """The envelope that stores `result`, or None (logged) when it cannot be cached.

        A hit returns what this miss returned: the model (see envelope.py), or
        the (model, completion) pair of create_with_completion.
        """
        try:
            return envelope_for(
                self.response_model,
                result,
                schema_fingerprint=self.info.schema_fingerprint,
                latency_ms=(perf_counter() - started) * 1000,
                created_at=time(),
            )
        except UnstorableResult as exc:
            logger.warning("%s returned %s; not cached", self.info.name, exc)
        except Exception:  # the caller still gets its result
            logger.exception("could not build the envelope of a %s result", self.info.name)
        return None

    # -- backend and fault handling -------------------------------------------------

    def backend(self) -> CacheBackend:
        backend = self.options.backend
        return backend if backend is not None else _defaults.default_backend()

    def ttl(self) -> float | None:
        return self.options.ttl if self.options.ttl is not None else _defaults.state.ttl

    def _backend_usable(self) -> bool:
        return not self._cooling_down(perf_counter())

    def _cooling_down(self, now: float) -> bool:
        """Whether the backend in use now is the one that failed less than
        `retry_after` ago (not a default configured since)."""
        if now >= self._down_until:
            return False
        fixed = self.options.backend
        return (fixed if fixed is not None else _defaults.state.backend) is self._down_backend

    def _backend_failed(self, exc: BaseException, now: float) -> tuple[str, str]:
        """(miss reason, error) for what a backend raised, and the cool-down if due.

        One key's trouble (an unreadable value, a refused write) is that call's
        miss only: the next store overwrites the key, every other key is read as
        usual. Only a backend that cannot be reached at all is skipped for a
        while, and by every function on it: a dead Redis is dead for all of them.
        """
        # Our backends' messages already start with the underlying error's name.
        error = str(exc) if isinstance(exc, BackendError) else describe_error(exc)
        if isinstance(exc, CorruptValue):
            return MissReason.CORRUPT, error
        if isinstance(exc, KeyFault):
            if first_report(error):
                logger.warning("cache backend refused a key of %s: %s", self.info.name, error)
            return MissReason.BACKEND_ERROR, error
        backend = self.backend()
        until = now + _defaults.state.retry_after
        if backend.mark_unavailable(error, until):
            logger.warning(
                "cache backend %s failed, calling through for %.1f s: %s",
                backend.label,
                _defaults.state.retry_after,
                error,
            )
        self._down_until, self._down_error, self._down_backend = until, error, backend
        for cached in registered().values():
            # The wrapper checks its own float: the hit path reads nothing shared.
            if cached is not self and cached._uses(backend):
                cached._down_until, cached._down_error = until, error
                cached._down_backend = backend
        return MissReason.BACKEND_ERROR, error

    def _uses(self, backend: CacheBackend) -> bool:
        fixed = self.options.backend
        return (fixed if fixed is not None else _defaults.state.backend) is backend

    # -- recording ------------------------------------------------------------------

    def _record(self, event: Record) -> None:
        scope = _scope.get()
        if scope is not None:
            if scope.labels and isinstance(event, CallEvent):
                event.labels = scope.labels
            if scope.sink is not None:
                scope.sink.append(event)
        try:
            recorder_slot.record(event)
        except Exception:  # recording is best effort; the caller's result is not
            logger.exception("could not record a call of %s", self.info.name)

    def _record_miss(
        self,
        key: str,
        arguments: bytes,
        started: float,
        envelope: Envelope[Any] | None,
        stored: bool,
        reason: str | None,
        error: str | None,
        store_error: str | None,
    ) -> None:
        # A failed store is noted as the call's error; why it missed stays what
        # the read said (the recorder explains a plain miss).
        self._record(
            CallEvent(
                Outcome.MISS,
                self.info,
                key,
                arguments,
                started,
                perf_counter() - started,
                envelope,
                stored,
                reason,
                error or store_error,
                self.ttl(),
            )
        )

    def _record_shared(self, key: str, started: float) -> None:
        # Another caller (thread, task or process) computed this value while we
        # waited: a hit, counted apart as what single-flight saved.
        self._record(CoalescedHit(self.info, key, started, perf_counter() - started))

    def _record_error(
        self, key: str, arguments: bytes, started: float, reason: str | None, exc: BaseException
    ) -> None:
        self._record(
            CallEvent(
                Outcome.ERROR,
                self.info,
                key,
                arguments,
                started,
                perf_counter() - started,
                None,
                False,
                reason,
                describe_error(exc),
                usage=billed_usage(exc),
            )
        )

    # -- tools for the dashboard and scripts ----------------------------------------

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key a call with these arguments reads and writes."""
        return (self._prepared or self._prepare(args))[1].build(args, kwargs)[0]

    def replay(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function for real, store nothing, record a "replay"."""
        if self.is_async:
            raise TypeError(f"{self.info.name} is async; await areplay() instead")
        key, arguments = self.keys.build(args, kwargs)
        return self._call_uncached(args, kwargs, key, arguments, perf_counter(), Outcome.REPLAY)

    async def areplay(self, *args: Any, **kwargs: Any) -> Any:
        key, arguments = self.keys.build(args, kwargs)
        return await self._acall_uncached(
            args, kwargs, key, arguments, perf_counter(), Outcome.REPLAY
        )
