"""Baseline: the diskcache decorator from Instructor's caching guide, copied verbatim.

Source: /work/shared/reference/instructor-caching.md, section "2. `diskcache` for
Persistent, Large Data Caching", block "Copy Caching Code". The recipe opens
`diskcache.Cache('./my_cache_directory')` at import time; here `open_cache` opens
it on the benchmark's temporary directory instead. `instructor_cache` below is the
recipe's text unchanged (hence no type hints): same key, same get, same validation.
"""

import functools
import inspect

import diskcache
from pydantic import BaseModel

cache: diskcache.Cache  # the recipe: cache = diskcache.Cache('./my_cache_directory')


def open_cache(directory: str) -> diskcache.Cache:
    global cache
    cache = diskcache.Cache(directory)
    return cache


# --- verbatim from the recipe -----------------------------------------------------


def instructor_cache(func):
    """Cache a function that returns a Pydantic model"""
    return_type = inspect.signature(func).return_annotation
    if not issubclass(return_type, BaseModel):  # (2)
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
