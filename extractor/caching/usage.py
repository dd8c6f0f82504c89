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
    # Prompt tokens written to the provider's prompt cache (Anthropic), all of them,
    # and the part of those written with the 1-hour TTL (billed higher than 5-minute).
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


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
    """Usage from a provider's usage object, normalised to OpenAI's inclusive counting:
    prompt_tokens holds every input token, cache reads and writes included.

    Anthropic's Usage reports input_tokens WITHOUT what was read from
    (cache_read_input_tokens) or written to (cache_creation_input_tokens) its
    prompt cache: they are added. OpenAI's CompletionUsage reports prompt_tokens
    WITH its cached tokens (prompt_tokens_details.cached_tokens) and, where it
    reports them, its cache writes (cache_write_tokens): taken as given.
    Either way no token is counted twice. After Instructor's retries, a response's
    usage is already the sum over every attempt (Instructor adds each attempt's
    usage into the last response's): recorded as is, it is what the call consumed.
    """
    if usage is None:
        return Usage()
    input_details = getattr(usage, "input_tokens_details", None)
    if input_details is not None and hasattr(usage, "input_tokens"):
        # OpenAI's Responses API: input_tokens inclusive, like prompt_tokens.
        return _inclusive(
            _int(usage.input_tokens), _int(getattr(usage, "output_tokens", 0)), input_details
        )
    if hasattr(usage, "input_tokens"):
        cache_read = _int(getattr(usage, "cache_read_input_tokens", 0))
        cache_write, cache_write_1h = _anthropic_writes(usage)
        return Usage(
            prompt_tokens=_int(usage.input_tokens) + cache_read + cache_write,
            completion_tokens=_int(getattr(usage, "output_tokens", 0)),
            cached_prompt_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=cache_write_1h,
        )
    return _inclusive(
        _int(getattr(usage, "prompt_tokens", 0)),
        _int(getattr(usage, "completion_tokens", 0)),
        getattr(usage, "prompt_tokens_details", None),
    )


def _inclusive(prompt: int, completion: int, details: Any) -> Usage:
    """OpenAI's counting: reads (cached_tokens) and, where reported, writes
    (cache_write_tokens) are parts of the prompt. Clipped to it, so a provider that
    overlaps the two never makes the uncached input negative."""
    read = min(_int(getattr(details, "cached_tokens", 0)), prompt)
    write = min(_int(getattr(details, "cache_write_tokens", 0)), prompt - read)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=read,
        cache_write_tokens=write,
    )


def _anthropic_writes(usage: Any) -> tuple[int, int]:
    """(all tokens written to the prompt cache, those with the 1-hour TTL).

    cache_creation_input_tokens is the total; cache_creation, where the API
    reports it, splits it by TTL (they are billed at different prices). An
    older response has no split: its writes are 5-minute ones, the default.
    """
    total = _int(getattr(usage, "cache_creation_input_tokens", 0))
    split = getattr(usage, "cache_creation", None)
    if split is None:
        return total, 0
    five_minutes = _int(getattr(split, "ephemeral_5m_input_tokens", 0))
    one_hour = _int(getattr(split, "ephemeral_1h_input_tokens", 0))
    total = max(total, five_minutes + one_hour)
    return total, min(one_hour, total)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
