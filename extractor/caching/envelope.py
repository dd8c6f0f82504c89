"""The JSON envelope every cached value is stored in (never pickle).

One `model_validate_json` call parses the envelope and validates the output
against the response model in Rust, which keeps a hit cheap.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

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
