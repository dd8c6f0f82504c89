"""The JSON envelope every cached value is stored in (never pickle).

A write stores the whole envelope; a hit checks its header and validates only
its output (see hit_reader). The rest (usage, model, timing) is read by the
recorder when it needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from extractor.caching.errors import CorruptValue

ENVELOPE_FORMAT: Literal[1] = 1

OutputT = TypeVar("OutputT", bound=BaseModel)


class Usage(BaseModel):
    """Token usage of the LLM call that produced a value."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the provider served from its own prompt cache.
    cached_prompt_tokens: int = 0
    # Prompt tokens written to the provider's prompt cache (Anthropic).
    cache_write_tokens: int = 0


class Envelope(BaseModel, Generic[OutputT]):
    # Field order is the serialized order, and `output` must stay last: see hit_reader.
    model_config = ConfigDict(frozen=True)

    format: Literal[1] = ENVELOPE_FORMAT
    schema_fingerprint: str
    llm_provider: str = ""
    llm_model: str = ""
    usage: Usage = Usage()
    latency_ms: float = 0.0
    created_at: float
    output: OutputT


@cache
def envelope_type(response_model: type[BaseModel]) -> type[Envelope[Any]]:
    """The envelope class whose `output` is validated as `response_model`."""
    return Envelope[response_model]  # type: ignore[valid-type]


def hit_reader(
    response_model: type[BaseModel], schema_fingerprint: str
) -> Callable[[str | bytes], BaseModel]:
    """Reads the output of a stored envelope; raises for anything but a valid one.

    Envelopes written here start with a fixed header (format and schema
    fingerprint) and end with the output, so a hit checks the header by prefix
    and validates only the output's JSON: the cost of the recipe's own
    `model_validate_json`. `"output":` cannot occur inside a JSON string (its
    quotes would be escaped) and every field before it is ours, so its first
    occurrence is the output's. Anything else (another writer's field order)
    takes the full parse.
    """
    header = f'{{"format":{ENVELOPE_FORMAT},"schema_fingerprint":"{schema_fingerprint}"'
    header_bytes = header.encode()
    marker, marker_bytes = '"output":', b'"output":'
    validate_output = response_model.model_validate_json
    full = TypeAdapter(
        TypedDict(  # type: ignore[operator]
            f"{response_model.__name__}Envelope",
            {"format": Literal[1], "schema_fingerprint": str, "output": response_model},
        )
    ).validate_json

    skip = len(header)
    step = len(marker)

    def read(raw: str | bytes) -> BaseModel:
        try:
            if type(raw) is bytes:  # Redis
                start = raw.find(marker_bytes, skip) if raw.startswith(header_bytes) else -1
            else:  # memory, disk
                start = raw.find(marker, skip) if raw.startswith(header) else -1  # type: ignore[arg-type]
            if start > 0:
                return validate_output(raw[start + step : -1])
        except ValueError:
            pass  # not our layout after all: the full parse decides
        envelope = full(raw)
        if envelope["schema_fingerprint"] != schema_fingerprint:
            raise CorruptValue("the stored value was written for another schema")
        return envelope["output"]  # type: ignore[no-any-return]

    return read
