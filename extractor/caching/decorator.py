"""`@instructor_cache`: a correct, fast, fail-open cache for Instructor calls.

The key follows the function, its code, an explicit version, its bound
arguments and the response model's schema. A hit is one backend read and one
Rust-side validation; everything else (recording, bookkeeping) is deferred to
the installed recorder. A backend that fails is skipped, never raised.
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from time import perf_counter, time
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from extractor.caching import defaults as _defaults
from extractor.caching.backends import CacheBackend, shared_backend
from extractor.caching.envelope import Envelope, envelope_type, hit_reader
from extractor.caching.errors import CacheConfigurationError, CorruptValue
from extractor.caching.events import (
    CallEvent,
    FunctionInfo,
    MissReason,
    Outcome,
    Record,
    describe_error,
    recorder_slot,
)
from extractor.caching.keys import KeyBuilder, code_fingerprint, schema_fingerprint
from extractor.caching.registry import register
from extractor.caching.singleflight import AsyncSingleFlight, SingleFlight
from extractor.caching.usage import completion_info

logger = logging.getLogger("extractor.caching")

F = TypeVar("F", bound=Callable[..., Any])
Arguments = tuple[tuple[Any, ...], dict[str, Any]]


class _Scope:
    """What bypass() and capture_calls() ask of the calls in their block.

    One context variable for both, so a hit pays a single lookup for them.
    """

    __slots__ = ("bypass", "sink")

    def __init__(self, bypass: bool, sink: list[Record] | None) -> None:
        self.bypass = bypass
        self.sink = sink


_scope: ContextVar[_Scope | None] = ContextVar("instructor_cache_scope", default=None)


def _enter_scope(*, bypass: bool | None = None, sink: list[Record] | None = None) -> Token[Any]:
    outer = _scope.get()
    return _scope.set(
        _Scope(
            bypass=bypass if bypass is not None else bool(outer and outer.bypass),
            sink=sink if sink is not None else (outer.sink if outer else None),
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

    A hit is a HitRecord tuple (function, key, started, latency); anything else
    is a CallEvent.
    """
    events: list[Record] = []
    token = _enter_scope(sink=events)
    try:
        yield events
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
        if not callable(func):
            raise TypeError(
                "instructor_cache takes the function to cache, or keyword options only: "
                f"@instructor_cache(backend={func!r}) rather than @instructor_cache({func!r})"
            )
        return CachedFunction(func, options).wrapper
    return lambda f: CachedFunction(f, options).wrapper


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
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise TypeError(
            f"@instructor_cache could not resolve the return annotation of {name}: {exc}. "
            "Define the response model before the decorated function."
        ) from exc
    annotation = hints.get("return")
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        shown = "no return annotation" if annotation is None else f"-> {annotation!r}"
        raise TypeError(
            f"@instructor_cache needs {name} to be annotated as returning a Pydantic "
            f"BaseModel subclass (-> MyModel); it has {shown}."
        )
    return annotation


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
        parameters = inspect.signature(func).parameters
        self.info = FunctionInfo(
            name=f"{func.__module__}:{func.__qualname__}",
            namespace=options.namespace,
            version=options.version,
            code_fingerprint=code_fingerprint(func),
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
        self.keys = KeyBuilder(
            func=func,
            function_name=self.info.name,
            namespace=options.namespace,
            version=options.version,
            code_fingerprint=self.info.code_fingerprint,
            schema_fingerprint=schema_fp,
            key_function=options.key_function,
        )
        self._read_hit = hit_reader(self.response_model, schema_fp)
        self._down_until = 0.0
        self._down_error = ""
        self._flight = SingleFlight()
        self._async_flight = AsyncSingleFlight()
        self.wrapper = self._async_wrapper() if self.is_async else self._sync_wrapper()
        self.wrapper.cache = self  # type: ignore[attr-defined]
        register(self)

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
        build_key = self.keys.build
        info = self.info
        fixed_backend = self.options.backend
        state = _defaults.state
        current_scope = _scope.get
        read_hit = self._read_hit
        slot = recorder_slot

        @functools.wraps(self.func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            key, arguments = build_key(args, kwargs)
            scope = current_scope()
            if not state.enabled or (scope is not None and scope.bypass):
                return self._call_uncached(args, kwargs, key, arguments, started, Outcome.BYPASS)
            reason: str | None = None
            error: str | None = None
            if started < self._down_until:
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
        build_key = self.keys.build
        info = self.info
        fixed_backend = self.options.backend
        state = _defaults.state
        current_scope = _scope.get
        lookup = self._lookup

        @functools.wraps(self.func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            key, arguments = build_key(args, kwargs)
            scope = current_scope()
            if not state.enabled or (scope is not None and scope.bypass):
                return await self._acall_uncached(
                    args, kwargs, key, arguments, started, Outcome.BYPASS
                )
            reason: str | None = None
            error: str | None = None
            if started < self._down_until:
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
        def compute() -> Any:
            result = self._run(call, key, arguments, started, reason)
            envelope = self._envelope_for(result, started)
            stored, set_error = False, None
            if envelope is not None and self._backend_usable():
                try:
                    self.backend().set(key, envelope.model_dump_json(), self.ttl())
                    stored = True
                except Exception as exc:
                    set_error = self._backend_failed(exc, perf_counter())[1]
            self._record_miss(key, arguments, started, envelope, stored, reason, error, set_error)
            return result

        result, shared = self._flight.run(key, compute)
        if shared:
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
        async def compute() -> Any:
            result = await self._arun(call, key, arguments, started, reason)
            envelope = self._envelope_for(result, started)
            stored, set_error = False, None
            if envelope is not None and self._backend_usable():
                try:
                    await self.backend().aset(key, envelope.model_dump_json(), self.ttl())
                    stored = True
                except Exception as exc:
                    set_error = self._backend_failed(exc, perf_counter())[1]
            self._record_miss(key, arguments, started, envelope, stored, reason, error, set_error)
            return result

        result, shared = await self._async_flight.run(key, compute)
        if shared:
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
        if not isinstance(result, self.response_model):
            logger.warning(
                "%s returned %s instead of %s; not cached",
                self.info.name,
                type(result).__name__,
                self.response_model.__name__,
            )
            return None
        completion = completion_info(result)
        return self.envelope_type(
            schema_fingerprint=self.info.schema_fingerprint,
            output=result,
            llm_provider=completion.provider,
            llm_model=completion.model,
            usage=completion.usage,
            latency_ms=(perf_counter() - started) * 1000,
            created_at=time(),
        )

    # -- backend and fault handling -------------------------------------------------

    def backend(self) -> CacheBackend:
        backend = self.options.backend
        return backend if backend is not None else _defaults.default_backend()

    def ttl(self) -> float | None:
        return self.options.ttl if self.options.ttl is not None else _defaults.state.ttl

    def _backend_usable(self) -> bool:
        return perf_counter() >= self._down_until

    def _backend_failed(self, exc: BaseException, now: float) -> tuple[str, str]:
        error = describe_error(exc)
        if isinstance(exc, CorruptValue):
            return MissReason.CORRUPT, error
        # Skip the backend for a moment: a dead Redis must not cost a timeout per call.
        self._down_until = now + _defaults.state.retry_after
        self._down_error = error
        logger.warning("cache backend failed for %s, calling through: %s", self.info.name, error)
        return MissReason.BACKEND_ERROR, error

    # -- recording ------------------------------------------------------------------

    def _record(self, event: Record) -> None:
        scope = _scope.get()
        if scope is not None and scope.sink is not None:
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
        # Another caller computed this value while we waited: served without an LLM call.
        self._record((self.info, key, started, perf_counter() - started))

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
            )
        )

    # -- tools for the dashboard and scripts ----------------------------------------

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key a call with these arguments reads and writes."""
        return self.keys.build(args, kwargs)[0]

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
