from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.redis_server import RedisProcess


@pytest.fixture
def redis_servers() -> Iterator[Callable[[], RedisProcess]]:
    """Start private redis-servers on demand (a test may stop one to cut Redis off);
    every one is stopped at the end."""
    started: list[RedisProcess] = []

    def start() -> RedisProcess:
        server = RedisProcess()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
