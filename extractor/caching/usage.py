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
    return usage_from(getattr(raw, "usage", None))


def billed_usage(exc: BaseException) -> Usage | None:
    """What the provider billed for a call that raised, where the error says.

    Instructor's InstructorRetryException carries `total_usage`, the sum over
    every attempt (each retry is a paid completion that failed validation).
    Found on the error or on what it was raised from, so a function that wraps
    Instructor's error in its own still reports it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        total = getattr(current, "total_usage", None)
        if total is not None:
            return usage_from(total)
        current = current.__cause__ or current.__context__
    return None


def usage_from(usage: Any) -> Usage:
    """Usage from a provider's usage object (OpenAI's CompletionUsage, Anthropic's Usage)."""
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
