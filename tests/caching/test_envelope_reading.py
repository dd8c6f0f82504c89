"""How a cached value is written into its envelope and read back on a hit.

`envelope_for` stores a result (the response model, or create_with_completion's
`(model, completion)` pair) or says in plain words why it cannot. `hit_reader`
reads a stored envelope the same way whichever backend it comes from (Redis
gives bytes, memory and disk give str): the output as an instance of the
annotated model, the provider's response as `_raw_response`, the pair as a
pair. Anything else is refused as corrupt, and the reason shown to the user
names what is wrong: another format, another schema, data after the closing
brace, no output, or a layout cachesite does not write.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import instructor
import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, ValidationError

from extractor.caching.completions import LazyCompletion
from extractor.caching.envelope import (
    UnstorableResult,
    _refusal,
    envelope_for,
    hit_reader,
)
from extractor.caching.errors import CorruptValue
from extractor.caching.keys import schema_fingerprint


class User(BaseModel):
    name: str
    age: int = 0


class Step(BaseModel):
    """A model with a field named `output`, the same key the envelope's output has."""

    output: str
    next: Step | None = None


class Tagged(BaseModel):
    tag: Any


USER_SCHEMA = schema_fingerprint(User)[0]
OTHER_SCHEMA = schema_fingerprint(Tagged)[0]

OTHER_FORMAT = (
    "the stored value has envelope format 1, written by another version "
    "of cachesite (this one writes format 2)"
)
OTHER_SCHEMA_REASON = "the stored value was written for another schema"
TRAILING_DATA = "the stored envelope has data after its closing brace"
NO_OUTPUT = "the stored envelope has no output"
NOT_OUR_LAYOUT = "the stored envelope is not laid out as cachesite writes it"

# Redis hands the reader bytes; the memory and disk backends hand it str.
AS_STORED = pytest.mark.parametrize(
    "as_stored", [str, str.encode], ids=["str (memory, disk)", "bytes (Redis)"]
)


def chat_completion(prompt_tokens: int = 11) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Jason is 25"},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 7,
                "total_tokens": prompt_tokens + 7,
            },
        }
    )


def anthropic_message() -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-latest",
            "content": [{"type": "text", "text": "Jason is 25"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 3},
        }
    )


def with_raw_response(value: BaseModel, completion: Any) -> BaseModel:
    """`value` as Instructor returns it: the provider's response kept as `_raw_response`."""
    value.__dict__["_raw_response"] = completion
    return value


# Each shape a result is stored in: the model, the model with the provider's
# response as `_raw_response`, and create_with_completion's pair.
EVERY_RESULT = pytest.mark.parametrize(
    "result",
    [
        User(name="Jason"),
        with_raw_response(User(name="Jason"), chat_completion()),
        (User(name="Jason"), chat_completion()),
    ],
    ids=["model", "model with completion", "pair"],
)


def stored(result: Any, model: type[BaseModel] = User, schema: str = USER_SCHEMA) -> str:
    """The envelope JSON a miss writes for `result`."""
    return envelope_for(
        model, result, schema_fingerprint=schema, latency_ms=12.5, created_at=1_700_000_000.0
    ).model_dump_json()


def read(raw: str | bytes, model: type[BaseModel] = User, schema: str = USER_SCHEMA) -> Any:
    return hit_reader(model, schema)(raw)


def refusal_of(raw: str | bytes, model: type[BaseModel] = User) -> str:
    with pytest.raises(CorruptValue) as refused:
        read(raw, model)
    return str(refused.value)


def without_output(envelope: str) -> str:
    """The envelope with its output under another key, as a foreign writer might store it."""
    return envelope.replace('"output":', '"result":')


# -- what a miss stores -------------------------------------------------------------------


def test_the_envelope_keeps_the_calls_timing_provider_model_and_usage():
    envelope = envelope_for(
        User,
        with_raw_response(User(name="Jason", age=25), chat_completion(prompt_tokens=11)),
        schema_fingerprint=USER_SCHEMA,
        latency_ms=12.5,
        created_at=1_700_000_000.0,
    )

    assert envelope.latency_ms == 12.5
    assert envelope.created_at == 1_700_000_000.0
    assert envelope.returned == "model"
    assert (envelope.llm_provider, envelope.llm_model) == ("openai", "gpt-4o-mini")
    assert (envelope.usage.prompt_tokens, envelope.usage.completion_tokens) == (11, 7)
    assert json.loads(envelope.model_dump_json())["latency_ms"] == 12.5


def test_a_value_without_a_provider_response_stores_none_and_empty_call_details():
    envelope = envelope_for(
        User, User(name="Jason"), schema_fingerprint=USER_SCHEMA, latency_ms=3.0, created_at=1.0
    )

    assert envelope.completion is None
    assert (envelope.llm_provider, envelope.llm_model) == ("", "")
    assert json.loads(envelope.model_dump_json())["completion"] is None


def test_another_class_with_the_same_schema_is_stored_as_the_annotated_class_extras_kept():
    class Person(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str
        age: int = 0

    def same_schema_class() -> type[BaseModel]:
        class Person(BaseModel):
            model_config = ConfigDict(extra="allow")
            name: str
            age: int = 0

        return Person

    schema = schema_fingerprint(Person)[0]
    result = same_schema_class()(name="Jason", nickname="J")

    envelope = envelope_for(
        Person, result, schema_fingerprint=schema, latency_ms=1.0, created_at=1.0
    )

    assert type(envelope.output) is Person
    assert envelope.output.name == "Jason"
    assert envelope.output.__pydantic_extra__ == {"nickname": "J"}
    hit = read(envelope.model_dump_json(), Person, schema)
    assert type(hit) is Person
    assert (hit.name, hit.age, hit.__pydantic_extra__) == ("Jason", 0, {"nickname": "J"})


def test_a_second_instructor_maybe_of_the_model_is_stored_as_the_first():
    annotated, returned_class = instructor.Maybe(User), instructor.Maybe(User)
    assert annotated is not returned_class
    schema = schema_fingerprint(annotated)[0]
    result = returned_class(result=User(name="Jason", age=25), error=False)

    hit = read(stored(result, annotated, schema), annotated, schema)

    assert type(hit) is annotated
    assert hit.result == User(name="Jason", age=25)


def test_a_class_of_the_same_name_whose_schema_differs_only_in_a_defaults_json_is_refused():
    # 1 and 1.0 are equal in Python but not in the schema's JSON, so not the same schema.
    def count_class(default: float) -> type[BaseModel]:
        class Count(BaseModel):
            n: float = default

        return Count

    annotated, returned_class = count_class(1.0), count_class(1)
    schema = schema_fingerprint(annotated)[0]

    with pytest.raises(UnstorableResult) as refused:
        stored(returned_class(), annotated, schema)

    assert str(refused.value) == "Count instead of Count"


# -- what cannot be stored, and the reason shown ------------------------------------------


def test_a_model_of_another_schema_is_not_stored():
    with pytest.raises(UnstorableResult) as refused:
        stored(Tagged(tag="x"))

    assert str(refused.value) == "Tagged instead of User"


def test_a_value_that_is_not_a_model_is_not_stored_and_its_type_is_named():
    with pytest.raises(UnstorableResult) as refused:
        stored({"name": "Jason"})

    assert str(refused.value) == "dict instead of User"


@pytest.mark.parametrize(
    "result",
    [
        pytest.param((User(name="Jason"), chat_completion(), "extra"), id="three items"),
        pytest.param(("Jason", chat_completion()), id="no model first"),
    ],
)
def test_a_tuple_that_is_not_a_model_and_its_completion_is_not_stored(result):
    with pytest.raises(UnstorableResult) as refused:
        stored(result)

    assert str(refused.value) == "a tuple instead of User"


def test_a_pair_whose_second_item_is_not_a_provider_response_is_not_stored():
    with pytest.raises(UnstorableResult) as refused:
        stored((User(name="Jason"), "Jason is 25"))

    assert str(refused.value) == (
        "a (model, str) pair; only a provider response of openai or anthropic "
        "can be stored with the model"
    )


def test_a_model_whose_json_would_not_read_back_the_same_is_not_stored():
    with pytest.raises(UnstorableResult) as refused:
        stored(Tagged(tag={1, 2}), Tagged, OTHER_SCHEMA)

    assert str(refused.value) == (
        "a Tagged that cannot be stored: field 'tag' would read back as [1, 2], not {1, 2}"
    )


# -- what a hit returns -------------------------------------------------------------------


@AS_STORED
def test_a_hit_without_a_provider_response_returns_the_model(as_stored):
    hit = read(as_stored(stored(User(name="Jason", age=25))))

    assert hit == User(name="Jason", age=25)
    assert "_raw_response" not in hit.__dict__


@AS_STORED
def test_a_hit_with_an_openai_response_returns_the_model_and_rebuilds_it_on_first_use(as_stored):
    result = with_raw_response(User(name="Jason", age=25), chat_completion(prompt_tokens=11))

    hit = read(as_stored(stored(result)))

    assert hit == User(name="Jason", age=25)
    assert isinstance(hit._raw_response, LazyCompletion)
    assert hit._raw_response.usage.prompt_tokens == 11
    assert hit._raw_response.rebuilt() == chat_completion(prompt_tokens=11)


@AS_STORED
def test_a_hit_with_an_anthropic_response_rebuilds_the_message(as_stored):
    result = with_raw_response(User(name="Jason", age=25), anthropic_message())

    hit = read(as_stored(stored(result)))

    assert hit == User(name="Jason", age=25)
    assert isinstance(hit._raw_response.rebuilt(), anthropic.types.Message)
    assert hit._raw_response.usage.input_tokens == 5


@AS_STORED
def test_a_stored_pair_is_returned_as_the_pair_with_the_completion_rebuilt(as_stored):
    model, completion = read(as_stored(stored((User(name="Jason", age=25), chat_completion()))))

    assert model == User(name="Jason", age=25)
    assert isinstance(completion, ChatCompletion)
    assert completion == chat_completion()
    assert model._raw_response is completion


def nested_steps() -> Step:
    return Step(output="parse", next=Step(output="store", next=Step(output="done")))


@AS_STORED
@pytest.mark.parametrize(
    "completion", [None, chat_completion()], ids=["no completion", "with completion"]
)
def test_an_output_with_its_own_output_keys_is_read_from_the_envelopes_output(
    as_stored, completion
):
    schema = schema_fingerprint(Step)[0]
    result = nested_steps() if completion is None else with_raw_response(nested_steps(), completion)

    hit = read(as_stored(stored(result, Step, schema)), Step, schema)

    assert hit == nested_steps()


@AS_STORED
def test_a_pair_whose_output_has_its_own_output_keys_is_read_whole(as_stored):
    schema = schema_fingerprint(Step)[0]

    model, _ = read(
        as_stored(stored((nested_steps(), chat_completion()), Step, schema)), Step, schema
    )

    assert model == nested_steps()


# -- what a hit refuses, and the reason shown ---------------------------------------------


@AS_STORED
@EVERY_RESULT
def test_a_value_of_another_envelope_format_is_refused_naming_both_formats(as_stored, result):
    old = stored(result).replace('{"format":2,', '{"format":1,', 1)

    assert refusal_of(as_stored(old)) == OTHER_FORMAT


def test_a_redis_value_of_another_format_with_bytes_that_are_not_utf8_is_still_refused_as_such():
    old = stored(User(name="Jason")).replace('{"format":2,', '{"format":1,', 1)
    damaged = old.encode().replace(b"Jason", b"Ja\xff\xfeson")

    assert refusal_of(damaged) == OTHER_FORMAT


@pytest.mark.parametrize(
    "result",
    [User(name="Jason"), (User(name="Jason"), chat_completion())],
    ids=["model", "pair"],
)
def test_a_redis_value_with_bytes_that_are_not_utf8_is_refused_never_half_read(result):
    damaged = stored(result).encode().replace(b"Jason", b"Ja\xffson")

    with pytest.raises((CorruptValue, ValidationError)) as refused:
        read(damaged)

    assert "Ja\ufffdson" not in str(refused.value)
    if isinstance(result, tuple):
        assert str(refused.value) == "the stored envelope has bytes that are not UTF-8"


def test_the_format_shown_for_a_foreign_value_is_at_most_ten_characters():
    foreign = '{"format":"2024-01-01T00:00:00","output":{}}'

    assert refusal_of(foreign) == (
        'the stored value has envelope format "2024-01-0, written by another version '
        "of cachesite (this one writes format 2)"
    )


@AS_STORED
@EVERY_RESULT
def test_a_value_written_for_another_schema_is_refused(as_stored, result):
    # Same length as ours, so the rest of the layout lines up exactly.
    other = stored(result, schema="0" * len(USER_SCHEMA))

    assert refusal_of(as_stored(other)) == OTHER_SCHEMA_REASON


@AS_STORED
@pytest.mark.parametrize("trailer", [" ", "\n", "}", '{"output":{"name":"Eve"}}'])
@EVERY_RESULT
def test_a_value_with_data_after_its_closing_brace_is_refused_never_half_read(
    as_stored, trailer, result
):
    envelope = stored(result) + trailer

    if trailer.endswith("}"):
        # It ends in a brace, so it looks whole: the output is read to the end and fails.
        with pytest.raises(ValidationError):
            read(as_stored(envelope))
    else:
        assert refusal_of(as_stored(envelope)) == TRAILING_DATA


@AS_STORED
@EVERY_RESULT
def test_a_value_with_no_output_is_refused(as_stored, result):
    assert refusal_of(as_stored(without_output(stored(result)))) == NO_OUTPUT


def test_a_pair_whose_stored_provider_response_is_empty_is_refused_as_having_no_type():
    pair = json.loads(stored((User(name="Jason"), chat_completion())))
    pair["completion"] = ""

    with pytest.raises(ValueError, match=r"^a stored provider response has no type$"):
        read(json.dumps(pair, separators=(",", ":")))


@AS_STORED
@pytest.mark.parametrize(
    "relayout",
    [
        pytest.param(lambda data: json.dumps(data, indent=2), id="pretty-printed"),
        pytest.param(lambda data: json.dumps(dict(reversed(data.items()))), id="keys reordered"),
    ],
)
def test_a_whole_envelope_in_another_layout_is_refused_as_not_laid_out_as_we_write_it(
    as_stored, relayout
):
    envelope = json.loads(stored(with_raw_response(User(name="Jason"), chat_completion())))

    assert refusal_of(as_stored(relayout(envelope))) == NOT_OUR_LAYOUT


@AS_STORED
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("not json at all", "Invalid JSON"),
        ('{"name":"Jason","age":25}', "schema_fingerprint\n  Field required"),
    ],
    ids=["not json", "a bare model"],
)
def test_a_value_that_is_no_envelope_is_refused_with_the_parsers_own_error(as_stored, raw, error):
    with pytest.raises(ValidationError, match=error):
        read(as_stored(raw))


# -- the reasons themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (' {"format":2}', NOT_OUR_LAYOUT),
        ('{"format":1,"schema_fingerprint":"x","returned":"model"}', OTHER_FORMAT),
        (
            '{"format":3,"schema_fingerprint":"x","returned":"model"}',
            "the stored value has envelope format 3, written by another version "
            "of cachesite (this one writes format 2)",
        ),
        (
            '{"format":2,"schema_fingerprint":"x","returned":"model","output":{}}',
            OTHER_SCHEMA_REASON,
        ),
        (
            f'{{"format":2,"schema_fingerprint":"{USER_SCHEMA}","returned":"model"}} ',
            TRAILING_DATA,
        ),
        (f'{{"format":2,"schema_fingerprint":"{USER_SCHEMA}","returned":"model"}}', NO_OUTPUT),
    ],
    ids=["not ours", "format 1", "format 3", "other schema", "trailing data", "no output"],
)
def test_each_refusal_says_what_is_wrong(text, reason):
    assert _refusal(text, USER_SCHEMA) == reason
