"""The contract every backend keeps.

Values are text (a JSON envelope). `get` returns None for a missing or expired
key. Trouble is raised as one of two kinds, so the decorator can contain it:

- `BackendUnavailable`: the backend as a whole cannot be reached (a refused or
  timed-out connection, a directory that cannot be opened). Every function on
  this backend skips it for a cool-down.
- `KeyFault` (a refused write) or `CorruptValue` (an unreadable value): one
  key's trouble. That call misses and the error is recorded; the backend stays
  in use for every other key.

Anything else a backend raises is taken as unavailability: a custom backend
that has not sorted its errors must not cost a timeout per call.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Collection, Iterable, Iterator
from time import perf_counter
from typing import Literal, NamedTuple

# The same failure is logged again only after this long: one line per outage,
# not one per call or per cool-down.
_RELOG_AFTER = 300.0
# How long the page keeps showing a connection-level failure nothing has cleared.
_SHOWN_FOR = 60.0

# How long a failed computation's marker stays for the callers that waited on it
# (they look at least every 100 ms; callers that come later compute again).
FAILURE_SHOWN_FOR = 10.0

_logged: dict[str, float] = {}
_logged_lock = threading.Lock()


def first_report(message: str) -> bool:
    """True when `message` should be logged: not logged in this process lately.

    Process-wide rather than per backend: app startup validates the URL with a
    backend of its own, and its error must not be logged twice.
    """
    now = perf_counter()
    with _logged_lock:
        last = _logged.get(message)
        if last is not None and now - last < _RELOG_AFTER:
            return False
        _logged[message] = now
        return True


def forget_reports(message: str) -> None:
    with _logged_lock:
        _logged.pop(message, None)


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__qualname__
    return f"{name}: {text}" if text else name


class FlightStep(NamedTuple):
    """What one look at a key's cross-process flight found (see singleflight.py).

    - "value": the key has a value now (`detail` is it);
    - "failed": the holder this caller saw failed (`detail` is its error text);
    - "held": another caller holds the lock (`detail` is its token);
    - "acquired": nobody did, and this caller holds the lock now.
    """

    state: Literal["value", "failed", "held", "acquired"]
    detail: str | bytes = ""


class CacheBackend(abc.ABC):
    #: A description safe to show and store (no password).
    label: str = ""
    #: True when other processes read and write the same values, so a miss is
    #: worth coordinating with them (flight_step and flight_release work).
    shares_flights: bool = False
    #: perf_counter() before which every function skips this backend, and why.
    down_until: float = 0.0
    down_error: str = ""

    @abc.abstractmethod
    def get(self, key: str) -> str | bytes | None: ...

    @abc.abstractmethod
    def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    @abc.abstractmethod
    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete `keys`; return how many existed."""

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    @abc.abstractmethod
    def clear(self) -> None: ...

    def close(self) -> None:
        return None

    # Async callers share the sync implementation unless a backend has a
    # native async client; memory and disk reads take microseconds.
    async def aget(self, key: str) -> str | bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: str, ttl: float | None = None) -> None:
        self.set(key, value, ttl)

    # -- cross-process single-flight (backends with shares_flights) --------------------

    def flight_step(self, key: str, token: str, lease: float, seen: Collection[str]) -> FlightStep:
        """Look at `key` once: its value, the failure of a holder in `seen`, its
        lock's holder; take the lock for `lease` seconds as `token` when free."""
        raise NotImplementedError(f"{type(self).__name__} does not share flights")

    def flight_release(self, key: str, token: str, failure: str | None = None) -> None:
        """Give up the lock if `token` still holds it; with `failure`, first tell the
        waiters that the computation failed (and why)."""
        raise NotImplementedError(f"{type(self).__name__} does not share flights")

    async def aflight_step(
        self, key: str, token: str, lease: float, seen: Collection[str]
    ) -> FlightStep:
        return self.flight_step(key, token, lease, seen)

    async def aflight_release(self, key: str, token: str, failure: str | None = None) -> None:
        self.flight_release(key, token, failure)

    # -- health: what calls learnt about this backend, for the log and the pages ------

    def mark_unavailable(self, error: str, until: float) -> bool:
        """Skip this backend until `until` (a perf_counter() time); True when the
        failure is news worth logging."""
        self.down_until = until
        self.down_error = error
        return first_report(error)

    def mark_working(self) -> None:
        """A write went through: the outage, if any, is over."""
        if self.down_error:
            forget_reports(self.down_error)
            self.down_error = ""

    def problem(self) -> str | None:
        """What is wrong with this backend and the fix, or None.

        Cheap enough for every page view: no round trip to a server, at most a
        stat. Until a write goes through again, a connection-level failure
        stays shown for a minute after the last one.
        """
        if not self.down_error or perf_counter() - self.down_until > _SHOWN_FOR:
            return None
        return (
            f"The cache {self.label} cannot be reached ({self.down_error}), so every "
            "call goes to the LLM. Bring it back, or point EXTRACTOR_CACHE_URL at one "
            "that works."
        )

    def __bool__(self) -> bool:
        # A backend is a backend even when empty (MemoryBackend has __len__).
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    def scan_keys(self) -> Iterator[str]:
        """Every key this backend holds (unexpired), lazily and in no set order, for
        the operations commands (reconcile); never on a call's path."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its keys")
