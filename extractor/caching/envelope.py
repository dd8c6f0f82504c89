"""The JSON envelope every cached value is stored in (never pickle).

A write stores the whole envelope. A hit reads it through a narrower view that
validates only the schema fingerprint and the output, in one Rust-side pass;
the rest (usage, model, timing) is read later by the recorder if needed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import TypedDict

ENVELOPE_FORMAT = 1

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
    model_config = ConfigDict(frozen=True)

    format: Literal[1] = ENVELOPE_FORMAT
    schema_fingerprint: str
    output: OutputT
    llm_provider: str = ""
    llm_model: str = ""
    usage: Usage = Usage()
    latency_ms: float = 0.0
    created_at: float


@cache
def envelope_type(response_model: type[BaseModel]) -> type[Envelope[Any]]:
    """The envelope class whose `output` is validated as `response_model`."""
    return Envelope[response_model]  # type: ignore[valid-type]


@cache
def hit_reader(response_model: type[BaseModel]) -> Callable[[str | bytes], dict[str, Any]]:
    """Parses a stored envelope into {"schema_fingerprint", "output"} and nothing more."""
    view = TypedDict(  # type: ignore[misc]
        f"{response_model.__name__}Hit",
        {"schema_fingerprint": str, "output": response_model},
    )
    return TypeAdapter(view).validate_json  # type: ignore[no-any-return]
