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
from contextvars import ContextVar
from time import perf_counter, time
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from extractor.caching import defaults as _defaults_module
from extractor.caching.backends import CacheBackend, shared_backend
from extractor.caching.envelope import Envelope, envelope_type
from extractor.caching.errors import CacheConfigurationError, CorruptValue
from extractor.caching.events import (
    CallEvent,
    FunctionInfo,
    MissReason,
    Outcome,
    describe_error,
    recorder_slot,
)
from extractor.caching.keys import KeyBuilder, code_fingerprint, schema_fingerprint
from extractor.caching.registry import register
from extractor.caching.singleflight import AsyncSingleFlight, SingleFlight
from extractor.caching.usage import completion_info

logger = logging.getLogger("extractor.caching")

F = TypeVar("F", bound=Callable[..., Any])

_bypass: ContextVar[bool] = ContextVar("instructor_cache_bypass", default=False)
_captured: ContextVar[list[CallEvent] | None] = ContextVar("instructor_cache_captured", default=None)


@contextmanager
def bypass() -> Iterator[None]:
    """Within this block decorated calls skip the cache (recorded as "bypass")."""
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


@contextmanager
def capture_calls() -> Iterator[list[CallEvent]]:
    """Collect the events of decorated calls made within this block (any recorder)."""
    events: list[CallEvent] = []
    token = _captured.set(events)
    try:
        yield events
    finally:
        _captured.reset(token)


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
    options = _CacheOptions(backend, ttl, version, namespace, key, model_argument)
    if func is not None:
        if not callable(func):
            raise TypeError(
                "instructor_cache takes the function to cache, or keyword options only: "
                f"@instructor_cache(backend={func!r}) rather than @instructor_cache({func!r})"
            )
        return CachedFunction(func, options).wrapper
    return lambda f: CachedFunction(f, options).wrapper


class _CacheOptions:
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
            raise TypeError(f"backend must be a URL or a CacheBackend, not {type(backend).__name__}")
        if isinstance(backend, str):
            backend = shared_backend(backend)  # a bad URL fails here, at decoration
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
                raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
            if ttl <= 0:
                raise CacheConfigurationError(f"ttl must be positive, got {ttl}")
        if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
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


def _response_model(func: Callable[..., Any]) -> type[BaseModel]:
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

    def __init__(self, func: Callable[..., Any], options: _CacheOptions) -> None:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("@instructor_cache cannot cache a generator; return a model instead")
        if not callable(func):
            raise TypeError(f"@instructor_cache needs a function, not {func!r}")
        self.func = func
        self.response_model = _response_model(func)
        self.envelope_type = envelope_type(self.response_model)
        self.options = options
        schema_fp, json_schema = schema_fingerprint(self.response_model)
        parameters = inspect.signature(func).parameters
        model_argument = options.model_argument if options.model_argument in parameters else None
        self.info = FunctionInfo(
            name=f"{func.__module__}:{func.__qualname__}",
            namespace=options.namespace,
            version=options.version,
            code_fingerprint=code_fingerprint(func),
            schema_name=f"{self.response_model.__module__}.{self.response_model.__qualname__}",
            schema_fingerprint=schema_fp,
            json_schema=json_schema,
            backend_label=options.backend.label if options.backend else "",
            ttl=options.ttl,
            has_key_function=options.key_function is not None,
            model_argument=model_argument,
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
        self._down_until = 0.0
        self._down_error = ""
        self._flight = SingleFlight()
        self._async_flight = AsyncSingleFlight()
        self.wrapper = self._make_async_wrapper() if inspect.iscoroutinefunction(func) else (
            self._make_sync_wrapper()
        )
        self.wrapper.cache = self  # type: ignore[attr-defined]
        register(self)

    # -- backend and fault handling -------------------------------------------------

    def backend(self) -> CacheBackend:
        return self.options.backend or _defaults_module.default_backend()

    def ttl(self) -> float | None:
        return self.options.ttl if self.options.ttl is not None else _defaults_module.current().ttl

    def _backend_failed(self, exc: BaseException, now: float) -> tuple[str, str]:
        error = describe_error(exc)
        if isinstance(exc, CorruptValue):
            return MissReason.CORRUPT, error
        # Skip the backend for a moment: a dead Redis must not cost a timeout per call.
        self._down_until = now + _defaults_module.current().retry_after
        self._down_error = error
        logger.warning("cache backend failed for %s, calling through: %s", self.info.name, error)
        return MissReason.BACKEND_ERROR, error

    def _decode(self, raw: str | bytes) -> Envelope[Any]:
        envelope = self.envelope_type.model_validate_json(raw)
        if envelope.schema_fingerprint != self.info.schema_fingerprint:
            raise CorruptValue("the stored value was written for another schema")
        return envelope

    def _record(self, event: CallEvent) -> None:
        captured = _captured.get()
        if captured is not None:
            captured.append(event)
        try:
            recorder_slot.recorder.record(event)
        except Exception:  # recording is best effort; the caller's result is not
            logger.exception("could not record a call of %s", self.info.name)

    # -- the sync path --------------------------------------------------------------

    def _make_sync_wrapper(self) -> Callable[..., Any]:
        build_key = self.keys.build
        decode = self._decode
        info = self.info
        record = self._record

        @functools.wraps(self.func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            key, arguments = build_key(args, kwargs)
            if not _defaults_module.current().enabled or _bypass.get():
                return self._call_uncached(args, kwargs, key, arguments, started, Outcome.BYPASS)[0]
            reason = error = None
            if started >= self._down_until:
                try:
                    raw = self.backend().get(key)
                    envelope = decode(raw) if raw is not None else None
                except Exception as exc:
                    reason, error = self._backend_failed(exc, started)
                else:
                    if envelope is not None:
                        record(CallEvent(Outcome.HIT, info, key, arguments, started,
                                         perf_counter() - started, envelope))
                        return envelope.output
            else:
                reason, error = MissReason.BACKEND_ERROR, self._down_error
            return self._miss(args, kwargs, key, arguments, started, reason, error)

        return wrapper

    def _miss(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        reason: str | None,
        error: str | None,
    ) -> Any:
        def compute() -> tuple[Any, Envelope[Any] | None]:
            return self._call_and_store(args, kwargs, key, arguments, started, reason, error)

        (result, envelope), shared = self._flight.run(key, compute)
        if shared:
            self._record(CallEvent(Outcome.HIT, self.info, key, arguments, started,
                                   perf_counter() - started, envelope))
        return result

    def _call_and_store(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        reason: str | None,
        error: str | None,
    ) -> tuple[Any, Envelope[Any] | None]:
        result, envelope = self._call_uncached(
            args, kwargs, key, arguments, started, Outcome.MISS, reason, error, record=False
        )
        stored = False
        ttl = self.ttl()
        if envelope is not None and perf_counter() >= self._down_until:
            try:
                self.backend().set(key, envelope.model_dump_json(), ttl)
                stored = True
            except Exception as exc:
                set_reason, set_error = self._backend_failed(exc, perf_counter())
                reason, error = reason or set_reason, error or set_error
        self._record(CallEvent(Outcome.MISS, self.info, key, arguments, started,
                               perf_counter() - started, envelope, stored, reason, error, ttl))
        return result, envelope

    def _call_uncached(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        outcome: str,
        reason: str | None = None,
        error: str | None = None,
        *,
        record: bool = True,
    ) -> tuple[Any, Envelope[Any] | None]:
        try:
            result = self.func(*args, **kwargs)
        except Exception as exc:
            self._record(CallEvent(Outcome.ERROR, self.info, key, arguments, started,
                                   perf_counter() - started, None, False, reason,
                                   describe_error(exc)))
            raise
        envelope = self._envelope_for(result, perf_counter() - started)
        if record:
            self._record(CallEvent(outcome, self.info, key, arguments, started,
                                   perf_counter() - started, envelope, False, reason, error))
        return result, envelope

    def _envelope_for(self, result: Any, latency: float) -> Envelope[Any] | None:
        if not isinstance(result, self.response_model):
            logger.warning(
                "%s returned %s instead of %s; not cached",
                self.info.name, type(result).__name__, self.response_model.__name__,
            )
            return None
        completion = completion_info(result)
        return self.envelope_type(
            schema_fingerprint=self.info.schema_fingerprint,
            output=result,
            llm_provider=completion.provider,
            llm_model=completion.model,
            usage=completion.usage,
            latency_ms=latency * 1000,
            created_at=time(),
        )

    # -- the async path -------------------------------------------------------------

    def _make_async_wrapper(self) -> Callable[..., Any]:
        build_key = self.keys.build
        decode = self._decode
        info = self.info
        record = self._record

        @functools.wraps(self.func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            key, arguments = build_key(args, kwargs)
            if not _defaults_module.current().enabled or _bypass.get():
                result, _ = await self._acall_uncached(
                    args, kwargs, key, arguments, started, Outcome.BYPASS
                )
                return result
            reason = error = None
            if started >= self._down_until:
                try:
                    raw = await self.backend().aget(key)
                    envelope = decode(raw) if raw is not None else None
                except Exception as exc:
                    reason, error = self._backend_failed(exc, started)
                else:
                    if envelope is not None:
                        record(CallEvent(Outcome.HIT, info, key, arguments, started,
                                         perf_counter() - started, envelope))
                        return envelope.output
            else:
                reason, error = MissReason.BACKEND_ERROR, self._down_error

            async def compute() -> tuple[Any, Envelope[Any] | None]:
                return await self._acall_and_store(
                    args, kwargs, key, arguments, started, reason, error
                )

            (result, envelope), shared = await self._async_flight.run(key, compute)
            if shared:
                record(CallEvent(Outcome.HIT, info, key, arguments, started,
                                 perf_counter() - started, envelope))
            return result

        return wrapper

    async def _acall_and_store(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        reason: str | None,
        error: str | None,
    ) -> tuple[Any, Envelope[Any] | None]:
        result, envelope = await self._acall_uncached(
            args, kwargs, key, arguments, started, Outcome.MISS, reason, error, record=False
        )
        stored = False
        ttl = self.ttl()
        if envelope is not None and perf_counter() >= self._down_until:
            try:
                await self.backend().aset(key, envelope.model_dump_json(), ttl)
                stored = True
            except Exception as exc:
                set_reason, set_error = self._backend_failed(exc, perf_counter())
                reason, error = reason or set_reason, error or set_error
        self._record(CallEvent(Outcome.MISS, self.info, key, arguments, started,
                               perf_counter() - started, envelope, stored, reason, error, ttl))
        return result, envelope

    async def _acall_uncached(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str,
        arguments: bytes,
        started: float,
        outcome: str,
        reason: str | None = None,
        error: str | None = None,
        *,
        record: bool = True,
    ) -> tuple[Any, Envelope[Any] | None]:
        try:
            result = await self.func(*args, **kwargs)
        except Exception as exc:
            self._record(CallEvent(Outcome.ERROR, self.info, key, arguments, started,
                                   perf_counter() - started, None, False, reason,
                                   describe_error(exc)))
            raise
        envelope = self._envelope_for(result, perf_counter() - started)
        if record:
            self._record(CallEvent(outcome, self.info, key, arguments, started,
                                   perf_counter() - started, envelope, False, reason, error))
        return result, envelope

    # -- tools for the dashboard and scripts ----------------------------------------

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key a call with these arguments reads and writes."""
        return self.keys.build(args, kwargs)[0]

    def replay(self, *args: Any, **kwargs: Any) -> tuple[Any, Envelope[Any] | None]:
        """Call the function for real, store nothing, record a "replay"."""
        if inspect.iscoroutinefunction(self.func):
            raise TypeError(f"{self.info.name} is async; use areplay()")
        key, arguments = self.keys.build(args, kwargs)
        return self._call_uncached(args, kwargs, key, arguments, perf_counter(), Outcome.REPLAY)

    async def areplay(self, *args: Any, **kwargs: Any) -> tuple[Any, Envelope[Any] | None]:
        key, arguments = self.keys.build(args, kwargs)
        return await self._acall_uncached(
            args, kwargs, key, arguments, perf_counter(), Outcome.REPLAY
        )
