"""Values expire after their ttl on every backend; the default ttl comes from settings."""

from __future__ import annotations

import time

import instructor

from extractor.caching import capture_calls, instructor_cache
from tests.caching.support import UserDetail, computed, outcomes

TTL = 0.4


def cached_extraction(client: instructor.Instructor, **options):
    @instructor_cache(**options)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def test_a_value_is_served_until_its_ttl_and_recomputed_after(client, backend, fake_llm):
    extract = cached_extraction(client, backend=backend, ttl=TTL)

    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")
        assert fake_llm.count == 1
        time.sleep(TTL + 0.3)
        extract("Jason is 25")
        extract("Jason is 25")

    assert fake_llm.count == 2
    assert outcomes(calls) == ["miss", "hit", "miss", "hit"]
    assert [event.ttl for event in computed(calls)] == [TTL, TTL]


def test_the_backend_forgets_a_value_after_its_ttl_and_keeps_one_without(backend):
    backend.set("a" * 64, "expiring", ttl=TTL)
    backend.set("b" * 64, "lasting")
    assert backend.get("a" * 64) in ("expiring", b"expiring")

    time.sleep(TTL + 0.3)

    assert backend.get("a" * 64) is None
    assert backend.get("b" * 64) in ("lasting", b"lasting")


def test_the_default_ttl_comes_from_settings(client, settings, disk_backend, fake_llm):
    settings.EXTRACTOR_CACHE_TTL = TTL
    extract = cached_extraction(client, backend=disk_backend)

    extract("Jason is 25")
    extract("Jason is 25")
    time.sleep(TTL + 0.3)
    extract("Jason is 25")

    assert fake_llm.count == 2


def test_the_decorators_ttl_wins_over_the_default(client, settings, disk_backend, fake_llm):
    settings.EXTRACTOR_CACHE_TTL = TTL
    extract = cached_extraction(client, backend=disk_backend, ttl=3600)

    extract("Jason is 25")
    time.sleep(TTL + 0.3)
    extract("Jason is 25")

    assert fake_llm.count == 1
