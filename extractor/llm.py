"""Instructor clients for the built-in extraction, and readable provider errors."""

from __future__ import annotations

from functools import lru_cache

import instructor
import openai
import tenacity
from django.conf import settings
from instructor.core.exceptions import InstructorRetryException
from pydantic import ValidationError

# Re-exported: views show provider errors through it.
from extractor.redaction import redact as redact

API_KEY_HELP = (
    "No LLM API key is configured. Set OPENAI_API_KEY in the environment "
    "(and OPENAI_BASE_URL for an OpenAI-compatible server), then restart cachesite."
)


class LLMNotConfigured(RuntimeError):
    def __init__(self) -> None:
        super().__init__(API_KEY_HELP)


def openai_client() -> instructor.Instructor:
    """The Instructor client for the configured OpenAI-compatible endpoint."""
    if not settings.OPENAI_API_KEY:
        raise LLMNotConfigured()
    return _client(
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.EXTRACTOR_LLM_TIMEOUT,
        settings.EXTRACTOR_LLM_MAX_RETRIES,
    )


@lru_cache(maxsize=8)
def _client(
    api_key: str, base_url: str | None, timeout: float | None, max_retries: int
) -> instructor.Instructor:
    return instructor.from_openai(
        openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
    )


def root_cause(exc: BaseException) -> BaseException:
    """The provider's own error under Instructor's and tenacity's retry wrappers."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, tenacity.RetryError) and exc.last_attempt.failed:
            inner = exc.last_attempt.exception()
            if inner is not None:
                exc = inner
                continue
        if isinstance(exc, InstructorRetryException) and exc.__cause__ is not None:
            exc = exc.__cause__
            continue
        break
    return exc


def describe_provider_error(exc: BaseException) -> str:
    """A sentence a person can act on; never includes the API key."""
    cause = root_cause(exc)
    if isinstance(cause, LLMNotConfigured):
        return str(cause)
    if isinstance(cause, (ValidationError, InstructorRetryException)):
        attempts = getattr(exc, "n_attempts", None) or "several"
        return (
            f"The model's answer still did not fit the schema after {attempts} attempts. "
            "Try a larger model, or clearer text."
        )
    exc = cause
    if isinstance(exc, openai.AuthenticationError):
        return "The provider rejected the API key (401). Check OPENAI_API_KEY."
    if isinstance(exc, openai.PermissionDeniedError):
        return "The provider refused this request (403): the key may lack access to that model."
    if isinstance(exc, openai.NotFoundError):
        return "The provider does not know that model or endpoint (404)."
    if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        # The provider's own words say what to change (text too long, a parameter
        # the model refuses...); it is shown, so it is redacted and kept short.
        said = _provider_message(exc)
        ending = f": {said}" if said else "."
        return f"The provider refused the request as invalid ({exc.status_code}){ending}"
    if isinstance(exc, openai.RateLimitError):
        return "The provider is rate limiting this key (429). Wait a moment and try again."
    if isinstance(exc, openai.APITimeoutError):
        return f"The provider did not answer within {settings.EXTRACTOR_LLM_TIMEOUT:g} seconds."
    if isinstance(exc, openai.APIConnectionError):
        return "Could not reach the provider. Check OPENAI_BASE_URL and the network."
    if isinstance(exc, openai.APIStatusError):
        return f"The provider answered with an error ({exc.status_code})."
    return redact(f"The extraction failed: {type(exc).__name__}: {exc}")


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    text = redact(" ".join(message.split()))
    return text if len(text) <= 300 else text[:299] + "…"
