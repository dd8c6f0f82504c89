"""Instructor clients for the built-in extraction, and readable provider errors.

Models are named "provider/model" (openai/gpt-4o-mini, anthropic/claude-haiku-4-5);
a name without a known provider prefix is an OpenAI-compatible model, so
"gpt-4o-mini" and an OpenAI-compatible server's "meta-llama/Llama-3-8B" keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import anthropic
import instructor
import openai
import tenacity
from django.conf import settings
from instructor.core.exceptions import InstructorRetryException
from pydantic import ValidationError

# Re-exported: views show provider errors through it.
from extractor.redaction import redact as redact

OPENAI = "openai"
ANTHROPIC = "anthropic"
PROVIDERS = (OPENAI, ANTHROPIC)

# What each provider reads from the environment: its key, and where to send requests.
_SETTINGS = {
    OPENAI: ("OPENAI_API_KEY", "OPENAI_BASE_URL", "an OpenAI-compatible server"),
    ANTHROPIC: ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "a proxy or gateway"),
}

API_KEY_HELP = (
    "No LLM API key is configured. Set OPENAI_API_KEY in the environment "
    "(and OPENAI_BASE_URL for an OpenAI-compatible server), then restart cachesite."
)


class LLMNotConfigured(RuntimeError):
    def __init__(self, provider: str = OPENAI) -> None:
        key, base_url, what = _SETTINGS[provider]
        super().__init__(
            f"No API key is configured for {provider}. Set {key} in the environment "
            f"(and {base_url} for {what}), then restart cachesite."
        )


@dataclass(frozen=True)
class ModelName:
    """A model as "provider/model"; `name` is what the provider's API is sent."""

    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.name}"

    @property
    def argument(self) -> str:
        """How the built-in extraction passes it (and its key holds it): OpenAI's bare,
        as before providers were named, so entries keep their keys and history reads
        "gpt-4o-mini → gpt-4o"; others as "provider/model"."""
        if self.provider == OPENAI and parse_model(self.name).provider == OPENAI:
            return self.name
        # "openai/anthropic/claude-3.5-sonnet" (a gateway's name) keeps its prefix.
        return str(self)


def parse_model(model: str) -> ModelName:
    """ "anthropic/claude-haiku-4-5" → (anthropic, claude-haiku-4-5); a bare name is OpenAI's."""
    provider, slash, name = model.partition("/")
    if slash and provider in PROVIDERS and name:
        return ModelName(provider, name)
    return ModelName(OPENAI, model)


def client_for(provider: str) -> instructor.Instructor:
    """The Instructor client for `provider`, or LLMNotConfigured naming what to set."""
    if provider == ANTHROPIC:
        return anthropic_client()
    return openai_client()


def openai_client() -> instructor.Instructor:
    """The Instructor client for the configured OpenAI-compatible endpoint."""
    if not settings.OPENAI_API_KEY:
        raise LLMNotConfigured(OPENAI)
    return _client(
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.EXTRACTOR_LLM_TIMEOUT,
        settings.EXTRACTOR_LLM_MAX_RETRIES,
    )


def anthropic_client() -> instructor.Instructor:
    """The Instructor client for Anthropic's Messages API (tool use: ANTHROPIC_TOOLS)."""
    if not settings.ANTHROPIC_API_KEY:
        raise LLMNotConfigured(ANTHROPIC)
    return _anthropic_client(
        settings.ANTHROPIC_API_KEY,
        settings.ANTHROPIC_BASE_URL,
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


@lru_cache(maxsize=8)
def _anthropic_client(
    api_key: str, base_url: str | None, timeout: float | None, max_retries: int
) -> instructor.Instructor:
    return instructor.from_anthropic(
        anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
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
    if not isinstance(exc, (openai.APIError, anthropic.APIError)):
        return redact(f"The extraction failed: {type(exc).__name__}: {exc}")
    key, base_url, _what = _SETTINGS[ANTHROPIC if isinstance(exc, anthropic.APIError) else OPENAI]
    if isinstance(exc, (openai.AuthenticationError, anthropic.AuthenticationError)):
        return f"The provider rejected the API key (401). Check {key}."
    if isinstance(exc, (openai.PermissionDeniedError, anthropic.PermissionDeniedError)):
        return "The provider refused this request (403): the key may lack access to that model."
    if isinstance(exc, (openai.NotFoundError, anthropic.NotFoundError)):
        return "The provider does not know that model or endpoint (404)."
    if isinstance(exc, anthropic.RequestTooLargeError):
        return (
            "The provider refused the request as too large (413): "
            "shorten the text or the context document."
        )
    if isinstance(
        exc,
        (
            openai.BadRequestError,
            openai.UnprocessableEntityError,
            anthropic.BadRequestError,
            anthropic.UnprocessableEntityError,
        ),
    ):
        # The provider's own words say what to change (text too long, a parameter
        # the model refuses...); it is shown, so it is redacted and kept short.
        said = _provider_message(exc)
        ending = f": {said}" if said else "."
        return f"The provider refused the request as invalid ({exc.status_code}){ending}"
    if isinstance(exc, (openai.RateLimitError, anthropic.RateLimitError)):
        return "The provider is rate limiting this key (429). Wait a moment and try again."
    if isinstance(exc, anthropic.OverloadedError):
        return "The provider is overloaded (529). Wait a moment and try again."
    if isinstance(exc, (openai.APITimeoutError, anthropic.APITimeoutError)):
        return f"The provider did not answer within {settings.EXTRACTOR_LLM_TIMEOUT:g} seconds."
    if isinstance(exc, (openai.APIConnectionError, anthropic.APIConnectionError)):
        return f"Could not reach the provider. Check {base_url} and the network."
    if isinstance(exc, (openai.APIStatusError, anthropic.APIStatusError)):
        return f"The provider answered with an error ({exc.status_code})."
    return redact(f"The extraction failed: {type(exc).__name__}: {exc}")


def _provider_message(exc: openai.APIStatusError | anthropic.APIStatusError) -> str:
    body: Any = exc.body
    # OpenAI's client keeps the "error" object, Anthropic's the whole
    # {"type": "error", "error": {...}}.
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    text = redact(" ".join(message.split()))
    return text if len(text) <= 300 else text[:299] + "…"
