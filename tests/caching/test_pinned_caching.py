"""Behaviours of the library no other test pinned (issue 11): canonical dict keys,
the ttl of async writes, and the value files a disk invalidation must remove."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from extractor.caching import DiskBackend, MemoryBackend, instructor_cache
from extractor.caching.arguments import encode_arguments
from tests.caching.support import UserDetail

TTL = 0.4


def test_dicts_that_differ_only_in_key_order_share_one_key_and_one_fingerprint(client, fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract(options: dict[str, object]) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": f"Jason is {options['age']}"}],
        )

    extract({"age": 25, "name": "Jason", "nested": {"a": 1, "b": 2}})
    extract({"nested": {"b": 2, "a": 1}, "name": "Jason", "age": 25})

    assert fake_llm.count == 1
    # The stored input fingerprint comes from the same bytes: canonical too.
    assert encode_arguments(({"a": 1, "b": [{"x": 1, "y": 2}]},)) == encode_arguments(
        ({"b": [{"y": 2, "x": 1}], "a": 1},)
    )
    assert extract.cache.cache_key({"a": 1, "b": 2}) == extract.cache.cache_key({"b": 2, "a": 1})


def test_a_value_written_by_an_async_caller_expires_after_its_ttl(backend):
    asyncio.run(backend.aset("c" * 64, "expiring", ttl=TTL))
    asyncio.run(backend.aset("d" * 64, "lasting"))
    assert backend.get("c" * 64) in ("expiring", b"expiring")

    time.sleep(TTL + 0.3)

    assert backend.get("c" * 64) is None
    assert backend.get("d" * 64) in ("lasting", b"lasting")


def test_delete_many_removes_the_files_of_values_too_large_for_the_database(
    disk_backend: DiskBackend,
):
    large = "x" * (disk_backend.cache.disk_min_file_size * 2)
    disk_backend.set("big", large)
    disk_backend.set("small", "v")
    directory = Path(disk_backend.cache.directory)
    assert value_files(directory), "the large value was not stored in a file of its own"

    assert disk_backend.delete_many(["big", "small"]) == 2

    assert disk_backend.get("big") is None
    assert value_files(directory) == []


def value_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*.val") if path.is_file()]
