"""Reads provider, model and token usage off a provider's response.

Instructor keeps the provider's raw completion on the returned model as
`_raw_response` (create_with_completion also returns it); OpenAI and Anthropic
report usage under different names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from extractor.caching.completions import LazyCompletion


class Usage(BaseModel):
    """Token usage of the LLM call that produced a value."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the provider served from its own prompt cache.
    cached_prompt_tokens: int = 0
    # Prompt tokens written to the provider's prompt cache (Anthropic).
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class CompletionInfo:
    provider: str
    model: str
    usage: Usage


def completion_info(completion: Any) -> CompletionInfo:
    """Provider, model and usage of a provider response; empty for None."""
    if isinstance(completion, LazyCompletion):  # a cached call's, returned again
        try:
            completion = completion.rebuilt()
        except Exception:
            completion = None
    if completion is None:
        return CompletionInfo(provider="", model="", usage=Usage())
    provider = type(completion).__module__.split(".", 1)[0]
    model = str(getattr(completion, "model", "") or "")
    return CompletionInfo(provider=provider, model=model, usage=usage_of(completion))


def usage_of(raw: Any) -> Usage:
    usage = getattr(raw, "usage", None)
    if usage is None:
        return Usage()
    if hasattr(usage, "input_tokens"):
        # Anthropic counts cached and freshly written prompt tokens apart from input_tokens.
        cache_read = _int(getattr(usage, "cache_read_input_tokens", 0))
        cache_write = _int(getattr(usage, "cache_creation_input_tokens", 0))
        return Usage(
            prompt_tokens=_int(usage.input_tokens) + cache_read + cache_write,
            completion_tokens=_int(getattr(usage, "output_tokens", 0)),
            cached_prompt_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        prompt_tokens=_int(getattr(usage, "prompt_tokens", 0)),
        completion_tokens=_int(getattr(usage, "completion_tokens", 0)),
        cached_prompt_tokens=_int(getattr(details, "cached_tokens", 0)),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
