from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from extractor.caching.events import get_recorder
from tests.fake_llm import FakeLLM
from tests.redis_server import RedisProcess

TEST_API_KEY = "sk-test-cachesite-secret-0123456789"


@pytest.fixture(autouse=True)
def _isolated_cache(settings, tmp_path: Path) -> None:
    """Each test gets its own diskcache directory and records synchronously."""
    settings.EXTRACTOR_RECORD_IN_BACKGROUND = False
    settings.EXTRACTOR_CACHE_URL = f"disk://{tmp_path / 'cache'}"
    settings.EXTRACTOR_CACHE_TTL = None
    settings.EXTRACTOR_CACHE_ENABLED = True


@pytest.fixture(scope="session")
def _fake_llm_server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture
def fake_llm(_fake_llm_server: FakeLLM, settings) -> Iterator[FakeLLM]:
    """The provider stand-in, with the app's settings pointed at it."""
    _fake_llm_server.reset()
    settings.OPENAI_API_KEY = TEST_API_KEY
    settings.OPENAI_BASE_URL = _fake_llm_server.base_url
    settings.EXTRACTOR_LLM_MAX_RETRIES = 0
    settings.EXTRACTOR_LLM_TIMEOUT = 5.0
    yield _fake_llm_server
    _fake_llm_server.reset()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        redis.Redis.from_url(url).ping()  # a configured but dead Redis fails loudly
        yield url
        return
    server = RedisProcess()
    yield server.url
    server.stop()


@pytest.fixture
def redis_cache_url(redis_url: str) -> str:
    """A cache URL on the real Redis with a prefix no other test uses."""
    return f"{redis_url}?prefix=test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def flush_records():
    """Write the buffered call records, as the background writer would."""

    def flush() -> None:
        get_recorder().flush()

    return flush


def pytest_collection_modifyitems(items):
    """Browser tests last: Playwright's sync API leaves an event loop running in the
    main thread for the rest of the session, and asyncio.run() refuses to start
    inside one."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
