from tests.services.conftest import redis_servers

__all__ = ["redis_servers"]
