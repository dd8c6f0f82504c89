"""Baseline: the Redis decorator from Instructor's caching guide, copied verbatim.

Source: /work/shared/reference/instructor-caching.md, section "2. Redis Caching
Decorator for Distributed Systems", block "Copy Caching Code". The recipe connects
with `redis.Redis("localhost")` at import time; here `open_cache` connects to the
benchmark's Redis URL instead. `instructor_cache` below is the recipe's text
unchanged (hence no type hints): same key, same GET, same validation.
"""

import functools
import inspect

import redis
from pydantic import BaseModel

cache: redis.Redis  # the recipe: cache = redis.Redis("localhost")


def open_cache(url: str) -> redis.Redis:
    global cache
    cache = redis.Redis.from_url(url)
    return cache


# --- verbatim from the recipe -----------------------------------------------------


def instructor_cache(func):
    """Cache a function that returns a Pydantic model"""
    return_type = inspect.signature(func).return_annotation
    if not issubclass(return_type, BaseModel):
        raise ValueError("The return type must be a Pydantic model")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        key = f"{func.__name__}-{functools._make_key(args, kwargs, typed=False)}"
        # Check if the result is already cached
        if (cached := cache.get(key)) is not None:
            # Deserialize from JSON based on the return type
            return return_type.model_validate_json(cached)

        # Call the function and cache its result
        result = func(*args, **kwargs)
        serialized_result = result.model_dump_json()
        cache.set(key, serialized_result)

        return result

    return wrapper
