"""A hit returns what the miss returned: aliases, exclude=True, context= and transforming
validators, create_with_completion's pair, _raw_response, Maybe, generics; and a stored
value is read strictly (nothing after its closing brace)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Generic, TypeVar

import anthropic
import instructor
import pytest
from openai.types.chat import ChatCompletion
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from extractor.caching import capture_calls, instructor_cache
from tests.caching.support import UserDetail, outcomes

MESSAGES = [{"role": "user", "content": "Jason is 25"}]


def twice(extract: Any, *args: Any) -> tuple[Any, Any, list[Any]]:
    """The first and second call's results, and what each call did."""
    with capture_calls() as calls:
        first = extract(*args)
        second = extract(*args)
    return first, second, calls


def cached(client: instructor.Instructor, backend: Any, model: type[BaseModel]):
    def extract(text: str):
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=model,
            messages=[{"role": "user", "content": text}],
        )

    # The annotation is the class itself: a string naming a local would not resolve.
    extract.__annotations__["return"] = model
    return instructor_cache(backend=backend)(extract)


def fields_of(value: BaseModel) -> dict[str, Any]:
    """Every field by name, excluded ones too (model_dump leaves those out)."""
    return {name: getattr(value, name) for name in type(value).model_fields}


# -- aliases ------------------------------------------------------------------------------


class Person(BaseModel):
    full_name: str = Field(alias="fullName")
    age: int


class Account(BaseModel):
    owner: str = Field(validation_alias="accountOwner", serialization_alias="owner_name")
    balance: int = Field(alias="Balance")


class Contact(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    email: str = Field(alias="eMail")


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        (Person, {"fullName": "Jason Liu", "age": 25}),
        (Account, {"accountOwner": "Jason", "Balance": 10}),
        (Contact, {"eMail": "jason@example.com"}),
    ],
    ids=["alias", "validation and serialization alias", "populate_by_name"],
)
def test_a_model_with_aliased_fields_is_served_from_the_cache(
    client, backend, fake_llm, model, answer
):
    fake_llm.answer_with(answer)
    extract = cached(client, backend, model)

    first, second, calls = twice(extract, "Jason Liu is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert type(second) is model
    assert fields_of(second) == fields_of(first)
    assert second.model_dump(by_alias=True) == first.model_dump(by_alias=True)


# -- validators that need Instructor's context= ------------------------------------------


class Quote(BaseModel):
    text: str

    @field_validator("text")
    @classmethod
    def quoted_from_the_source(cls, text: str, info: ValidationInfo) -> str:
        if text not in info.context["source"]:
            raise ValueError(f"{text!r} is not in the source")
        return text


def test_a_validator_reading_instructors_context_is_served_from_the_cache(
    client, backend, fake_llm
):
    fake_llm.answer_with({"text": "Jason"})

    @instructor_cache(backend=backend)
    def quote(source: str) -> Quote:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=Quote,
            messages=[{"role": "user", "content": source}],
            context={"source": source},
        )

    first, second, calls = twice(quote, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert second.text == first.text == "Jason"


# -- exclude=True ------------------------------------------------------------------------


class Reading(BaseModel):
    value: int
    note: str = Field(default="no note", exclude=True)


class Audited(BaseModel):
    value: int
    reviewer: str = Field(exclude=True)


def test_an_excluded_field_with_a_default_comes_back_as_the_llm_answered(client, backend, fake_llm):
    fake_llm.answer_with({"value": 3, "note": "read at noon"})
    extract = cached(client, backend, Reading)

    first, second, calls = twice(extract, "the meter says 3")

    assert outcomes(calls) == ["miss", "hit"]
    assert first.note == second.note == "read at noon"
    assert second.model_dump() == {"value": 3}  # still excluded from the caller's dumps


def test_a_required_excluded_field_is_served_from_the_cache(client, backend, fake_llm):
    fake_llm.answer_with({"value": 3, "reviewer": "Ada"})
    extract = cached(client, backend, Audited)

    first, second, calls = twice(extract, "the meter says 3")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert fields_of(second) == fields_of(first) == {"value": 3, "reviewer": "Ada"}


# -- transforming validators -------------------------------------------------------------


class Shout(BaseModel):
    name: str
    tags: list[str] = []

    @field_validator("name", mode="before")
    @classmethod
    def stripped(cls, name: str) -> str:
        return name.strip()

    @field_validator("name")
    @classmethod
    def exclaimed(cls, name: str) -> str:
        return name.upper() + "!"

    @model_validator(mode="after")
    def tagged(self) -> Shout:
        self.tags = [*self.tags, "checked"]
        return self


def test_a_hit_returns_what_transforming_validators_made_not_a_second_pass(
    client, backend, fake_llm
):
    fake_llm.answer_with({"name": "  jason ", "tags": ["user"]})
    extract = cached(client, backend, Shout)

    first, second, calls = twice(extract, "Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
    assert fields_of(first) == {"name": "JASON!", "tags": ["user", "checked"]}
    assert fields_of(second) == fields_of(first)


class Splitter(BaseModel):
    tags: str

    @field_validator("tags")
    @classmethod
    def split(cls, tags: str) -> Any:
        return tags.split(",")  # not the declared type: JSON could not bring it back


def test_a_value_that_would_not_read_back_the_same_is_not_cached(client, backend, fake_llm):
    fake_llm.answer_with({"tags": "a,b"})
    extract = cached(client, backend, Splitter)

    first, second, calls = twice(extract, "tags a and b")

    assert first.tags == second.tags == ["a", "b"]
    assert fake_llm.count == 2
    assert [(call.outcome, call.stored) for call in calls] == [("miss", False), ("miss", False)]


# -- create_with_completion and _raw_response --------------------------------------------


def test_a_function_annotated_as_a_pair_caches_the_model_and_the_completion(
    client, backend, fake_llm
):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40)

    @instructor_cache(backend=backend)
    def extract(text: str) -> tuple[UserDetail, Any]:
        return client.chat.completions.create_with_completion(
            model="gpt-4o-mini", response_model=UserDetail, messages=MESSAGES
        )

    (user, completion), (cached_user, cached_completion), calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert type(cached_user) is UserDetail
    assert cached_user.model_dump() == user.model_dump()
    assert isinstance(cached_completion, ChatCompletion)
    assert cached_completion == completion
    assert cached_completion.usage.prompt_tokens == 1500
    assert cached_user._raw_response is cached_completion


def test_a_function_annotated_as_the_model_that_returns_the_pair_is_cached_as_a_pair(
    client, backend, fake_llm
):
    @instructor_cache(backend=backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create_with_completion(
            model="gpt-4o-mini", response_model=UserDetail, messages=MESSAGES
        )

    first, second, calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert isinstance(second, tuple)
    assert second[0].model_dump() == first[0].model_dump()
    assert second[1] == first[1]


def test_an_async_function_returning_the_pair_is_cached_as_a_pair(aclient, redis_backend, fake_llm):
    @instructor_cache(backend=redis_backend)
    async def extract(text: str) -> tuple[UserDetail, Any]:
        return await aclient.chat.completions.create_with_completion(
            model="gpt-4o-mini", response_model=UserDetail, messages=MESSAGES
        )

    with capture_calls() as calls:
        user, completion = asyncio.run(extract("Jason is 25"))
        cached_user, cached_completion = asyncio.run(extract("Jason is 25"))

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert cached_user.model_dump() == user.model_dump()
    assert cached_completion == completion


def test_a_pair_whose_second_item_is_not_a_provider_response_is_not_cached(
    client, memory_backend, fake_llm
):
    @instructor_cache(backend=memory_backend)
    def extract(text: str) -> tuple[UserDetail, Any]:
        user = client.chat.completions.create(
            model="gpt-4o-mini", response_model=UserDetail, messages=MESSAGES
        )
        return user, "a note"

    first, second, calls = twice(extract, "Jason is 25")

    assert first[1] == second[1] == "a note"
    assert fake_llm.count == 2
    assert [call.stored for call in calls] == [False, False]


def test_raw_response_usage_reads_the_same_on_a_hit_as_on_the_miss(client, backend, fake_llm):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)
    extract = cached(client, backend, UserDetail)

    first, second, calls = twice(extract, "Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
    for result in (first, second):
        usage = result._raw_response.usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (1500, 40)
        assert usage.prompt_tokens_details.cached_tokens == 1024
        assert result._raw_response.model == "gpt-4o-mini"
    assert second._raw_response.rebuilt() == first._raw_response


def test_an_anthropic_message_is_rebuilt_for_raw_response_on_a_hit(fake_llm, memory_backend):
    claude = instructor.from_anthropic(
        anthropic.Anthropic(
            api_key="sk-ant-test", base_url=fake_llm.anthropic_base_url, max_retries=0
        )
    )
    fake_llm.answer_with({"name": "Elizabeth", "age": 20})
    fake_llm.report_usage(prompt_tokens=2500, completion_tokens=40, cached_tokens=2048)

    @instructor_cache(backend=memory_backend)
    def extract(text: str) -> UserDetail:
        return claude.chat.completions.create(
            model="claude-3-5-haiku-latest",
            max_tokens=1000,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    first, second, _calls = twice(extract, "Who is the heroine?")

    assert fake_llm.count == 1
    rebuilt = second._raw_response.rebuilt()
    assert isinstance(rebuilt, anthropic.types.Message)
    assert rebuilt == first._raw_response
    assert second._raw_response.usage.cache_read_input_tokens == 2048


def test_a_model_built_without_the_provider_has_no_raw_response_on_a_hit(backend, fake_llm):
    @instructor_cache(backend=backend)
    def extract(text: str) -> UserDetail:
        return UserDetail(name=text, age=1)

    first, second, calls = twice(extract, "Jason")

    assert outcomes(calls) == ["miss", "hit"]
    assert not hasattr(first, "_raw_response")
    assert not hasattr(second, "_raw_response")


def planted(tmp_path, monkeypatch) -> str:
    """A module on sys.path that must never be imported, and a packed completion naming it."""
    # Imported here so the rest of this file also runs against code without the module.
    from extractor.caching.completions import StoredCompletion, pack

    (tmp_path / "planted_module.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return pack(StoredCompletion(type="planted_module:Anything", data="{}"))


def with_completion(raw: str, packed: str) -> str:
    envelope = json.loads(raw)
    envelope["completion"] = packed
    return json.dumps(envelope, separators=(",", ":"))


def test_a_stored_response_type_outside_the_provider_sdks_is_never_imported(
    client, memory_backend, fake_llm, tmp_path, monkeypatch
):
    extract = cached(client, memory_backend, UserDetail)
    key = extract.cache.cache_key("Jason is 25")
    extract("Jason is 25")
    memory_backend.set(
        key, with_completion(memory_backend.get(key), planted(tmp_path, monkeypatch))
    )

    user = extract("Jason is 25")

    assert fake_llm.count == 1  # the output itself is intact: still a hit
    with pytest.raises(AttributeError, match="could not be rebuilt"):
        user._raw_response.usage  # noqa: B018
    assert "planted_module" not in sys.modules


def test_a_pair_whose_stored_response_type_is_not_allowed_is_a_corrupt_miss(
    client, memory_backend, fake_llm, tmp_path, monkeypatch
):
    @instructor_cache(backend=memory_backend)
    def extract(text: str) -> tuple[UserDetail, Any]:
        return client.chat.completions.create_with_completion(
            model="gpt-4o-mini", response_model=UserDetail, messages=MESSAGES
        )

    key = extract.cache.cache_key("Jason is 25")
    extract("Jason is 25")
    memory_backend.set(
        key, with_completion(memory_backend.get(key), planted(tmp_path, monkeypatch))
    )

    with capture_calls() as calls:
        user, completion = extract("Jason is 25")

    assert user.name == "name of Jason is 25"
    assert isinstance(completion, ChatCompletion)
    assert fake_llm.count == 2
    assert calls[0].miss_reason == "corrupt"
    assert "planted_module" not in sys.modules


# -- classes made per call, and generics -------------------------------------------------


def test_instructor_maybe_written_inline_in_the_annotation_and_the_body_is_cached(
    client, backend, fake_llm
):
    fake_llm.answer_with({"result": {"name": "Jason", "age": 25}, "error": False})

    @instructor_cache(backend=backend)
    def extract(text: str) -> instructor.Maybe(UserDetail):  # type: ignore[valid-type]
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=instructor.Maybe(UserDetail),
            messages=[{"role": "user", "content": text}],
        )

    first, second, calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert type(second) is extract.cache.response_model
    assert second.result == first.result == UserDetail(name="Jason", age=25)
    assert (second.error, second.message) == (False, None)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


def test_a_generic_response_model_is_cached_and_read_back_with_its_parameters(
    client, backend, fake_llm
):
    fake_llm.answer_with({"items": [{"name": "Jason", "age": 25}], "total": 1})
    extract = cached(client, backend, Page[UserDetail])

    first, second, calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert type(second) is Page[UserDetail]
    assert second.items == [UserDetail(name="Jason", age=25)]
    assert second.model_dump() == first.model_dump()


# -- strict envelopes ------------------------------------------------------------------


def text_of(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def closing_brace_replaced(good: str) -> str:
    return good[:-1] + "X"


def whitespace_after(good: str) -> str:
    return good + " \n"


def whitespace_and_a_byte_after_the_output(good: str) -> str:
    return good[:-1] + "\nX"


def a_field_after_the_output(good: str) -> str:
    return good[:-1] + ',"junk":1}'


def a_second_envelope_after(good: str) -> str:
    return good + good


@pytest.mark.parametrize(
    "spoil",
    [
        closing_brace_replaced,
        whitespace_after,
        whitespace_and_a_byte_after_the_output,
        a_field_after_the_output,
        a_second_envelope_after,
    ],
)
def test_an_envelope_with_anything_after_its_closing_brace_is_a_corrupt_miss(
    client, backend, fake_llm, spoil
):
    extract = cached(client, backend, UserDetail)
    key = extract.cache.cache_key("Jason is 25")
    extract("Jason is 25")
    good = text_of(backend.get(key))
    backend.set(key, spoil(good))

    first, second, calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 2
    assert outcomes(calls) == ["miss", "hit"]
    assert calls[0].miss_reason == "corrupt"
    assert second.model_dump() == first.model_dump()
    assert text_of(backend.get(key)) != spoil(good)
    assert json.loads(text_of(backend.get(key)))["output"] == first.model_dump()


def test_a_value_stored_by_the_previous_envelope_format_is_an_honest_miss(
    client, backend, fake_llm
):
    extract = cached(client, backend, UserDetail)
    key = extract.cache.cache_key("Jason is 25")
    fingerprint = extract.cache.info.schema_fingerprint
    backend.set(
        key,
        f'{{"format":1,"schema_fingerprint":"{fingerprint}","llm_provider":"openai",'
        '"llm_model":"gpt-4o-mini","usage":{"prompt_tokens":1,"completion_tokens":1,'
        '"cached_prompt_tokens":0,"cache_write_tokens":0},"latency_ms":1.0,'
        '"created_at":1.0,"output":{"name":"Old","age":1}}',
    )

    first, second, calls = twice(extract, "Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit"]
    assert calls[0].miss_reason == "corrupt"
    assert "envelope format 1" in calls[0].error
    assert second.name == first.name == "name of Jason is 25"
