"""The decorator: what it accepts, what it refuses at decoration time, and how a call goes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Optional

import pytest

from extractor.caching import (
    CacheConfigurationError,
    CachedFunction,
    MemoryBackend,
    bypass,
    capture_calls,
    instructor_cache,
)
from tests.caching.support import UserDetail, computed, outcomes


@pytest.fixture
def extract(client, disk_backend):
    @instructor_cache(backend=disk_backend)
    def extract_user(text: str) -> UserDetail:
        """Extract the user a text mentions."""
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract_user


def test_a_miss_calls_the_provider_and_a_hit_does_not(extract, fake_llm):
    with capture_calls() as calls:
        first = extract("Jason is 25")
        second = extract("Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert isinstance(second, UserDetail)
    assert second.model_dump() == first.model_dump() == {"name": "name of Jason is 25", "age": 12}
    miss = calls[0]
    assert (miss.stored, miss.miss_reason, miss.error) == (True, None, None)


def test_the_bare_decorator_uses_the_configured_default_backend(client, fake_llm, tmp_path):
    @instructor_cache
    def extract_user(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    extract_user("Jason is 25")
    extract_user("Jason is 25")

    assert fake_llm.count == 1
    backend = extract_user.cache.backend()
    assert backend.label == f"disk://{tmp_path / 'cache'}"  # EXTRACTOR_CACHE_URL in tests
    assert backend.get(extract_user.cache.cache_key("Jason is 25")) is not None


def test_the_wrapper_keeps_the_functions_identity_and_describes_it(extract):
    assert extract.__name__ == "extract_user"
    assert extract.__doc__ == "Extract the user a text mentions."
    assert isinstance(extract.cache, CachedFunction)
    info = extract.cache.info
    assert info.name == f"{__name__}:extract.<locals>.extract_user"
    assert info.response_model is UserDetail
    assert info.schema_name == "tests.caching.support.UserDetail"
    assert info.parameter_names == ("text",)
    assert info.json_schema == UserDetail.model_json_schema()


def test_the_options_are_kept_on_the_function_info():
    @instructor_cache(backend=MemoryBackend(), ttl=60, version=3, namespace="tenant-a")
    def extract_user(text: str, model: str = "gpt-4o-mini") -> UserDetail:
        raise AssertionError("not called")

    info = extract_user.cache.info
    assert (info.ttl, info.version, info.namespace, info.model_argument) == (
        60.0,
        "3",
        "tenant-a",
        "model",
    )
    assert extract_user.cache.ttl() == 60.0


def test_the_stored_envelope_carries_the_model_usage_and_output(extract, disk_backend, fake_llm):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)

    extract("Jason is 25")

    stored = json.loads(disk_backend.get(extract.cache.cache_key("Jason is 25")))
    assert stored["schema_fingerprint"] == extract.cache.info.schema_fingerprint
    assert stored["output"] == {"name": "name of Jason is 25", "age": 12}
    assert (stored["llm_provider"], stored["llm_model"]) == ("openai", "gpt-4o-mini")
    assert stored["usage"] == {
        "prompt_tokens": 1500,
        "completion_tokens": 40,
        "cached_prompt_tokens": 1024,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
    }


def test_changing_a_returned_model_does_not_change_the_cached_value(extract):
    first = extract("Jason is 25")
    first.name = "changed by the caller"
    second = extract("Jason is 25")
    second.age = 99

    assert extract("Jason is 25").model_dump() == {"name": "name of Jason is 25", "age": 12}


# -- refused at decoration time ----------------------------------------------------------


def returns_dict(text: str) -> dict:
    return {}


def returns_list(text: str) -> list[UserDetail]:
    return []


def returns_optional(text: str) -> Optional[UserDetail]:  # noqa: UP045 (the spelling under test)
    return None


def returns_union(text: str) -> UserDetail | None:
    return None


def not_annotated(text: str):
    return None


def returns_a_string(text: str) -> str:
    return text


@pytest.mark.parametrize(
    "function",
    [returns_dict, returns_list, returns_optional, returns_union, not_annotated, returns_a_string],
)
def test_a_return_annotation_that_is_not_a_model_is_refused(function):
    with pytest.raises(TypeError, match=r"needs .*\b" + function.__name__ + r" .*BaseModel"):
        instructor_cache(function)


def test_the_refusal_names_what_the_annotation_is():
    with pytest.raises(TypeError, match="it has no return annotation"):
        instructor_cache(not_annotated)
    with pytest.raises(TypeError, match=r"it has -> .*list\["):
        instructor_cache(returns_list)


def test_an_unresolvable_return_annotation_is_refused_with_the_fix():
    def extract_user(text: str) -> NotDefinedAnywhere:  # noqa: F821
        raise AssertionError("not called")

    with pytest.raises(TypeError, match="Define the response model before"):
        instructor_cache(extract_user)


def test_a_generator_is_refused():
    def users(text: str) -> Iterator[UserDetail]:
        yield UserDetail(name=text, age=1)

    async def async_users(text: str) -> AsyncIterator[UserDetail]:
        yield UserDetail(name=text, age=1)

    with pytest.raises(TypeError, match="cannot cache a generator"):
        instructor_cache(users)
    with pytest.raises(TypeError, match="cannot cache a generator"):
        instructor_cache(async_users)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": "x"}, "ttl must be a number"),
        ({"ttl": True}, "ttl must be a number"),
        ({"version": 1.5}, "version must be a str or int"),
        ({"backend": 42}, "backend must be a URL or a CacheBackend"),
        ({"namespace": 7}, "namespace must be a str"),
        ({"key": "text"}, "key must be a function"),
    ],
)
def test_an_option_of_the_wrong_type_is_a_type_error(options, message):
    with pytest.raises(TypeError, match=message):
        instructor_cache(**options)


@pytest.mark.parametrize("ttl", [-1, 0])
def test_a_ttl_that_is_not_positive_is_a_configuration_error(ttl):
    with pytest.raises(CacheConfigurationError, match="ttl must be positive"):
        instructor_cache(ttl=ttl)


def test_passing_an_option_positionally_is_refused_with_the_keyword_spelling():
    with pytest.raises(TypeError, match=r"@instructor_cache\(backend='memory://'\)"):
        instructor_cache("memory://")


# -- bypass, disabled cache, replay ------------------------------------------------------


def test_bypass_calls_the_provider_every_time_and_reads_nothing(extract, disk_backend, fake_llm):
    extract("Jason is 25")
    key = extract.cache.cache_key("Jason is 25")
    stored = disk_backend.get(key)

    with capture_calls() as calls, bypass():
        extract("Jason is 25")
        extract("Jason is 25")

    assert fake_llm.count == 3
    assert outcomes(calls) == ["bypass", "bypass"]
    assert all(event.stored is False for event in computed(calls))
    assert disk_backend.get(key) == stored
    extract("Jason is 25")
    assert fake_llm.count == 3


def test_bypass_writes_nothing(extract, fake_llm):
    with bypass():
        extract("Sarah is 31")

    with capture_calls() as calls:
        extract("Sarah is 31")

    assert fake_llm.count == 2
    assert outcomes(calls) == ["miss"]


def test_bypass_ends_with_its_block(extract, fake_llm):
    with bypass():
        extract("Jason is 25")
    extract("Jason is 25")
    extract("Jason is 25")

    assert fake_llm.count == 2


def test_an_async_function_is_bypassed_too(aclient, memory_backend, fake_llm):
    @instructor_cache(backend=memory_backend)
    async def extract_user(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    async def calls_in_bypass() -> None:
        with bypass():
            await extract_user("Jason is 25")
            await extract_user("Jason is 25")

    with capture_calls() as calls:
        asyncio.run(calls_in_bypass())

    assert fake_llm.count == 2
    assert outcomes(calls) == ["bypass", "bypass"]


def test_a_disabled_cache_calls_the_provider_every_time(extract, settings, disk_backend, fake_llm):
    settings.EXTRACTOR_CACHE_ENABLED = False

    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")

    assert fake_llm.count == 2
    assert outcomes(calls) == ["bypass", "bypass"]
    assert disk_backend.get(extract.cache.cache_key("Jason is 25")) is None


def test_replay_calls_the_provider_and_leaves_the_cached_value(extract, disk_backend, fake_llm):
    extract("Jason is 25")
    key = extract.cache.cache_key("Jason is 25")
    stored = disk_backend.get(key)
    fake_llm.answer_with({"name": "Jason", "age": 26})

    with capture_calls() as calls:
        replayed = extract.cache.replay("Jason is 25")

    assert replayed.model_dump() == {"name": "Jason", "age": 26}
    assert fake_llm.count == 2
    assert outcomes(calls) == ["replay"]
    assert disk_backend.get(key) == stored
    assert extract("Jason is 25").name == "name of Jason is 25"


def test_an_async_function_is_replayed_with_areplay(aclient, memory_backend, fake_llm):
    @instructor_cache(backend=memory_backend)
    async def extract_user(text: str) -> UserDetail:
        return await aclient.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with pytest.raises(TypeError, match="await areplay"):
        extract_user.cache.replay("Jason is 25")
    with capture_calls() as calls:
        replayed = asyncio.run(extract_user.cache.areplay("Jason is 25"))

    assert replayed.name == "name of Jason is 25"
    assert outcomes(calls) == ["replay"]
    assert memory_backend.get(extract_user.cache.cache_key("Jason is 25")) is None


# -- results that are not the response model ---------------------------------------------


def test_a_result_that_is_not_the_response_model_is_returned_and_not_cached(client, fake_llm):
    backend = MemoryBackend()

    @instructor_cache(backend=backend)
    def extract_user(text: str) -> UserDetail:
        user = client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )
        return user.model_dump()  # a bug in the caller's code: a dict, not the model

    with capture_calls() as calls:
        first = extract_user("Jason is 25")
        second = extract_user("Jason is 25")

    assert first == second == {"name": "name of Jason is 25", "age": 12}
    assert fake_llm.count == 2
    assert [(event.outcome, event.stored, event.envelope) for event in calls] == [
        ("miss", False, None),
        ("miss", False, None),
    ]
    assert len(backend) == 0


def test_returning_none_is_passed_through_and_not_cached(fake_llm):
    seen: list[str] = []

    @instructor_cache(backend=MemoryBackend())
    def extract_user(text: str) -> UserDetail:
        seen.append(text)
        return None  # type: ignore[return-value]

    assert extract_user("nobody here") is None
    assert extract_user("nobody here") is None
    assert seen == ["nobody here", "nobody here"]


def test_an_exception_in_the_function_reaches_the_caller_and_is_recorded(fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract_user(text: str) -> UserDetail:
        raise ValueError(f"cannot read {text!r}")

    with capture_calls() as calls, pytest.raises(ValueError, match="cannot read 'x'"):
        extract_user("x")

    assert [(event.outcome, event.error) for event in calls] == [
        ("error", "ValueError: cannot read 'x'")
    ]


# -- create_with_completion's pair -------------------------------------------------------


def returns_a_pair(text: str) -> tuple[UserDetail, object]:
    raise AssertionError("not called")


def returns_a_pair_of_strings(text: str) -> tuple[str, object]:
    raise AssertionError("not called")


def returns_a_triple(text: str) -> tuple[UserDetail, object, object]:
    raise AssertionError("not called")


def test_a_pair_annotation_caches_with_the_model_as_its_response_model():
    assert instructor_cache(returns_a_pair).cache.response_model is UserDetail


@pytest.mark.parametrize("function", [returns_a_pair_of_strings, returns_a_triple])
def test_a_tuple_annotation_other_than_model_and_completion_is_refused_with_the_fix(function):
    with pytest.raises(TypeError, match=r"-> tuple\[MyModel, Any\]"):
        instructor_cache(function)
