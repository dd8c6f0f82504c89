"""The contract every backend keeps.

Values are text (a JSON envelope). `get` returns None for a missing or expired
key and raises for trouble; the decorator turns trouble into a recorded miss.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable


class CacheBackend(abc.ABC):
    #: A description safe to show and store (no password).
    label: str = ""

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

    def __bool__(self) -> bool:
        # A backend is a backend even when empty (MemoryBackend has __len__).
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"
