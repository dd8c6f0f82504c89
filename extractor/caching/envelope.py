"""The JSON envelope every cached value is stored in (never pickle).

A write stores the whole envelope; a hit checks its framing and validates only
its output (see hit_reader). The rest (usage, model, timing, the provider's
response) is read by whoever needs it: the recorder, or a caller that looks at
`_raw_response`.

What a hit returns:
- for a function that returned a model: an instance of the annotated response
  model with the field values the miss returned (see output.py), and, when the
  miss had the provider's response (`_raw_response`, openai or anthropic), a
  `LazyCompletion` as `_raw_response` that rebuilds that response on first use
  (`result._raw_response.usage.prompt_tokens` reads the original usage);
- for one that returned `(model, completion)` (`create_with_completion`): the
  same pair, the completion rebuilt as its provider class, and it is also the
  model's `_raw_response`.

Format 2 (this one) stores fields by name with their exact values, the
provider's response and the shape of the result; a format-1 value is an honest
miss (recorded as corrupt, with the reason) and is overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar, cast
from weakref import WeakKeyDictionary

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, create_model

from extractor.caching.completions import (
    LazyCompletion,
    PackedCompletion,
    rebuild_completion,
    store_completion,
    unpack,
)
from extractor.caching.errors import CorruptValue
from extractor.caching.keys import schema_fingerprint
from extractor.caching.output import UnstorableOutput, output_codec
from extractor.caching.usage import Usage, completion_info

__all__ = [
    "ENVELOPE_FORMAT",
    "Envelope",
    "UnstorableResult",
    "Usage",
    "envelope_for",
    "envelope_type",
    "hit_reader",
]

ENVELOPE_FORMAT: Literal[2] = 2

OutputT = TypeVar("OutputT", bound=BaseModel)

# What the function returned: the model, or create_with_completion's (model, completion).
Returned = Literal["model", "tuple"]


class Envelope(BaseModel, Generic[OutputT]):
    # Field order is the serialized order, and hit_reader relies on it: the
    # header fields, the provider's response (base64 or null), the small
    # fields, and `output` last.
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[2] = ENVELOPE_FORMAT
    schema_fingerprint: str
    returned: Returned = "model"
    completion: PackedCompletion | None = None
    llm_provider: str = ""
    llm_model: str = ""
    usage: Usage = Usage()
    latency_ms: float = 0.0
    created_at: float
    output: OutputT


@cache
def envelope_type(response_model: type[BaseModel]) -> type[Envelope[Any]]:
    """The envelope class whose `output` is `response_model`, stored as output.py says."""
    codec = output_codec(response_model)
    validator, serializer = PlainValidator(codec.from_stored), PlainSerializer(codec.to_jsonable)
    output: Any = Annotated[response_model, validator, serializer]
    envelope = create_model(
        f"{response_model.__name__}Envelope",
        __base__=Envelope[response_model],  # type: ignore[valid-type]
        output=(output, ...),
    )
    return cast(type[Envelope[Any]], envelope)


class UnstorableResult(ValueError):
    """What a function returned cannot be cached; the message says why."""


def envelope_for(
    response_model: type[BaseModel],
    result: Any,
    *,
    schema_fingerprint: str,
    latency_ms: float,
    created_at: float,
) -> Envelope[Any]:
    """The envelope storing `result`, or UnstorableResult saying why it cannot be stored.

    `result` is the response model (an instance of it, or of a class with the
    same JSON schema, such as a second `instructor.Maybe(Model)`), or
    `(model, completion)` as `create_with_completion` returns it.
    """
    returned: Returned = "model"
    if type(result) is tuple and len(result) == 2 and isinstance(result[0], BaseModel):
        returned, (model, completion) = "tuple", result
        stored = store_completion(completion)
        if stored is None:
            raise UnstorableResult(
                f"a (model, {type(completion).__name__}) pair; only a provider response "
                "of openai or anthropic can be stored with the model"
            )
    else:
        model, completion = result, getattr(result, "_raw_response", None)
        stored = store_completion(completion) if completion is not None else None
    model = _as_response_model(model, response_model)
    try:
        output = output_codec(response_model).stored_form(model)
    except UnstorableOutput as exc:
        raise UnstorableResult(f"a {response_model.__name__} that cannot be stored: {exc}") from exc
    info = completion_info(completion)
    return envelope_type(response_model)(
        schema_fingerprint=schema_fingerprint,
        returned=returned,
        llm_provider=info.provider,
        llm_model=info.model,
        usage=info.usage,
        latency_ms=latency_ms,
        created_at=created_at,
        completion=stored,
        output=output,
    )


def _as_response_model(model: Any, response_model: type[BaseModel]) -> BaseModel:
    if isinstance(model, response_model):
        return model
    if isinstance(model, BaseModel) and _schema_of(type(model)) == _schema_of(response_model):
        # Same schema, another class (each instructor.Maybe(...) call makes one):
        # stored as, and read back as, the annotated class.
        return response_model.model_construct(
            model.model_fields_set,
            **{name: model.__dict__[name] for name in type(model).model_fields},
            **(model.__pydantic_extra__ or {}),
        )
    shown = "a tuple" if isinstance(model, tuple) else type(model).__name__
    raise UnstorableResult(f"{shown} instead of {response_model.__name__}")


_schemas: WeakKeyDictionary[type[BaseModel], str] = WeakKeyDictionary()


def _schema_of(model: type[BaseModel]) -> str:
    # Only a result of another class gets here, once per class (on a miss).
    fingerprint = _schemas.get(model)
    if fingerprint is None:
        fingerprint = _schemas[model] = schema_fingerprint(model)[0]
    return fingerprint


def hit_reader(
    response_model: type[BaseModel], schema_fingerprint: str
) -> Callable[[str | bytes], Any]:
    """Reads what a hit returns from a stored envelope; raises for anything else.

    Envelopes written here start with a fixed header (format, schema
    fingerprint, what the function returned) and end with the output, so a hit
    checks the header by prefix and the closing brace, steps over the
    provider's response (base64: one memchr for its closing quote), finds the
    output and validates only its JSON: one Rust-side validation, the cost of
    the recipe's own `model_validate_json`. `"output":` cannot occur inside a
    JSON string (its quotes would be escaped) and every field before it is ours,
    so its first occurrence after the provider's response is the output's. The
    output runs to the last byte but one, and that byte must be the closing
    brace: with anything after it the value is refused, never half-read. The
    small fields between are not parsed on a hit: whoever reads them parses
    them (the recorder; `_raw_response` when first used).
    A value in any other layout (another format, another writer) is refused as
    corrupt, with the reason.
    """
    head = f'{{"format":{ENVELOPE_FORMAT},"schema_fingerprint":"{schema_fingerprint}","returned":'
    model_header = f'{head}"model","completion":'
    tuple_header = f'{head}"tuple","completion":'
    model_header_bytes = model_header.encode()
    marker, marker_bytes = '"output":', b'"output":'
    read_json = output_codec(response_model).read_json
    parse = envelope_type(response_model).model_validate_json
    skip, step = len(model_header), len(marker)
    quote = ord('"')

    def read(raw: str | bytes) -> Any:
        if isinstance(raw, bytes):  # Redis
            if raw.startswith(model_header_bytes) and raw.endswith(b"}"):
                if raw[skip] == quote:  # the provider's response, in base64
                    start = raw.find(marker_bytes, raw.find(b'"', skip + 1))
                    if start > 0:
                        output = read_json(raw[start + step : -1])
                        output.__dict__["_raw_response"] = LazyCompletion(raw)
                        return output
                else:
                    start = raw.find(marker_bytes, skip)
                    if start > 0:
                        return read_json(raw[start + step : -1])
        elif raw.startswith(model_header) and raw.endswith("}"):  # memory, disk
            if raw[skip] == '"':
                start = raw.find(marker, raw.find('"', skip + 1))
                if start > 0:
                    output = read_json(raw[start + step : -1])
                    output.__dict__["_raw_response"] = LazyCompletion(raw)
                    return output
            else:
                start = raw.find(marker, skip)
                if start > 0:
                    return read_json(raw[start + step : -1])
        return read_other(raw)

    def read_other(raw: str | bytes) -> Any:
        # create_with_completion's pair: the completion is returned, so it is rebuilt now.
        damaged = False
        if isinstance(raw, bytes):  # Redis
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                # Decoded anyway to say what the value is; never read as a pair.
                text, damaged = raw.decode("utf-8", "replace"), True
        else:
            text = str(raw)
        if not (text.startswith(tuple_header) and text.endswith("}") and text[skip] == '"'):
            if not text.startswith('{"format":'):
                parse(raw)  # not an envelope: the parser's own error says what is wrong
            raise CorruptValue(_refusal(text, schema_fingerprint))
        if damaged:
            raise CorruptValue("the stored envelope has bytes that are not UTF-8")
        end = text.find('"', skip + 1)
        start = text.find(marker, end)  # -1 when `end` is
        if start < 0:
            raise CorruptValue("the stored envelope has no output")
        output = read_json(text[start + step : -1])
        completion = rebuild_completion(unpack(text[skip + 1 : end]))
        output.__dict__["_raw_response"] = completion
        return output, completion

    return read


def _refusal(text: str, schema_fingerprint: str) -> str:
    """Why a stored value is not an envelope this function can read."""
    ours = f'{{"format":{ENVELOPE_FORMAT},'
    if not text.startswith('{"format":'):
        return "the stored envelope is not laid out as cachesite writes it"
    if not text.startswith(ours):
        found = text[len('{"format":') :].partition(",")[0][:10]
        return (
            f"the stored value has envelope format {found}, written by another version "
            f"of cachesite (this one writes format {ENVELOPE_FORMAT})"
        )
    if not text.startswith(f'{ours}"schema_fingerprint":"{schema_fingerprint}","returned":'):
        return "the stored value was written for another schema"
    if not text.endswith("}"):
        return "the stored envelope has data after its closing brace"
    return "the stored envelope has no output"
