"""The built-in extraction behind the web form and the shell.

One cached function per registered schema (the response model is part of the
decorated function's signature), all sharing one prompt. The model is named
"provider/model" (openai/gpt-4o-mini, anthropic/claude-haiku-4-5).

A context document (a contract, a book) is sent as its own block before the
question, so the provider's prompt cache can hold it across questions:
Anthropic's marked with cache_control (5-minute or 1-hour TTL), OpenAI's first
in the messages with prompt_cache_key set to its hash (OpenAI caches by
itself). The response cache's key includes the document's hash: the decorated
function takes the hash and loads the text, so the answer depends on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from extractor import llm
from extractor.caching import call_labels, instructor_cache
from extractor.models import Document
from extractor.schemas import get_schema

SYSTEM_PROMPT = (
    "Extract one {schema} from the user's text. Use only facts the text states; "
    "do not invent values."
)
DOCUMENT_PROMPT = (
    "The text above is a context document. Extract one {schema} that answers the user's "
    "question from it. Use only facts the document or the question states; do not invent values."
)
VALIDATION_RETRIES = 2
# Anthropic requires a ceiling on the answer; an extraction's is far below it.
MAX_OUTPUT_TOKENS = 4096

CACHE_TTLS = {"5m": "5 minutes", "1h": "1 hour"}
DEFAULT_CACHE_TTL = "5m"

# Smallest prompt prefix each provider caches, in tokens (below it a cache mark is
# ignored and billed as plain input). Anthropic's depend on the model (its prompt
# caching docs); the first prefix that matches wins, dated suffixes included.
OPENAI_MIN_CACHEABLE_TOKENS = 1024
ANTHROPIC_MIN_CACHEABLE_TOKENS = (
    ("claude-haiku-4-5", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-haiku", 2048),
    ("claude", 1024),
)

# The TTL is not part of the response cache's key: it changes what the provider
# bills for the prompt prefix, not the answer.
_cache_ttl: ContextVar[str] = ContextVar("extraction_prompt_cache_ttl", default=DEFAULT_CACHE_TTL)


class UnknownCacheTTL(ValueError):
    pass


class DocumentNotStored(LookupError):
    pass


def estimate_tokens(text: str) -> int:
    """An ESTIMATE of the tokens in `text`: UTF-8 bytes / 4 (no tokenizer is at hand)."""
    return len(text.encode("utf-8")) // 4


def minimum_cacheable_tokens(model: str) -> int:
    """The smallest prompt prefix `model`'s provider caches, in tokens."""
    name = llm.parse_model(model)
    if name.provider == llm.ANTHROPIC:
        for prefix, tokens in ANTHROPIC_MIN_CACHEABLE_TOKENS:
            if name.name.startswith(prefix):
                return tokens
    return OPENAI_MIN_CACHEABLE_TOKENS


@dataclass(frozen=True)
class PromptCachePlan:
    """Whether a context document is sent marked for the provider's prompt cache."""

    provider: str
    estimated_tokens: int
    minimum_tokens: int

    @property
    def cacheable(self) -> bool:
        return self.estimated_tokens >= self.minimum_tokens


def prompt_cache_plan(model: str, document_text: str) -> PromptCachePlan:
    return PromptCachePlan(
        provider=llm.parse_model(model).provider,
        estimated_tokens=estimate_tokens(document_text),
        minimum_tokens=minimum_cacheable_tokens(model),
    )


def extract(
    text: str,
    schema_name: str,
    model: str,
    document: Document | str | None = None,
    cache_ttl: str = DEFAULT_CACHE_TTL,
) -> BaseModel:
    """Extract a `schema_name` object from `text` with `model` ("provider/model"), through
    the cache; `document` (a stored Document or its sha256) is sent first as context,
    marked for the provider's prompt cache for `cache_ttl` ("5m" or "1h")."""
    if cache_ttl not in CACHE_TTLS:
        raise UnknownCacheTTL(
            f"cache_ttl must be one of {', '.join(CACHE_TTLS)}, not {cache_ttl!r}"
        )
    sha = document.sha256 if isinstance(document, Document) else (document or "")
    # One key for "gpt-4o-mini" and "openai/gpt-4o-mini": they are one model.
    canonical = llm.parse_model(model).argument
    with _prompt_cache_ttl(cache_ttl), call_labels(document=sha) if sha else _nothing():
        return extractor_for(schema_name)(  # type: ignore[no-any-return]
            text=text, model=canonical, document=sha
        )


@contextlib.contextmanager
def _prompt_cache_ttl(ttl: str) -> Iterator[None]:
    token = _cache_ttl.set(ttl)
    try:
        yield
    finally:
        _cache_ttl.reset(token)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@cache
def extractor_for(schema_name: str) -> Callable[..., Any]:
    schema = get_schema(schema_name)

    def extract_schema(text: str, model: str, document: str = "") -> BaseModel:
        name = llm.parse_model(model)
        context = _document_text(document) if document else ""
        if name.provider == llm.ANTHROPIC:
            return _ask_anthropic(schema, name.name, text, document, context)
        return _ask_openai(schema, name.name, text, document, context)

    extract_schema.__annotations__["return"] = schema
    extract_schema.__name__ = extract_schema.__qualname__ = f"extract_{schema.__name__}"
    return instructor_cache(extract_schema)


def _document_text(sha: str) -> str:
    text = Document.objects.filter(sha256=sha).values_list("text", flat=True).first()
    if text is None:
        raise DocumentNotStored(
            f"The context document {sha[:12]}… is not stored (it was deleted); "
            "send the document again."
        )
    return text


def _ask_openai(
    schema: type[BaseModel], model: str, text: str, sha: str, context: str
) -> BaseModel:
    messages: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    prompt = SYSTEM_PROMPT
    if context:
        # First, so every question on the document shares the longest prefix;
        # OpenAI caches it by itself, and the key routes the questions together.
        messages.append({"role": "system", "content": context})
        prompt = DOCUMENT_PROMPT
        if prompt_cache_plan(model, context).cacheable:
            extra["prompt_cache_key"] = sha
    messages += [
        {"role": "system", "content": prompt.format(schema=schema.__name__)},
        {"role": "user", "content": text},
    ]
    return llm.openai_client().chat.completions.create(
        model=model,
        response_model=schema,
        max_retries=VALIDATION_RETRIES,
        messages=messages,  # type: ignore[arg-type]
        **extra,
    )


def _ask_anthropic(
    schema: type[BaseModel], model: str, text: str, sha: str, context: str
) -> BaseModel:
    system: list[dict[str, Any]] = []
    prompt = SYSTEM_PROMPT
    if context:
        block: dict[str, Any] = {"type": "text", "text": context}
        if prompt_cache_plan(f"{llm.ANTHROPIC}/{model}", context).cacheable:
            ttl = _cache_ttl.get()
            # Without "ttl" the cache keeps the prefix 5 minutes, as before 1-hour writes.
            block["cache_control"] = (
                {"type": "ephemeral", "ttl": ttl}
                if ttl != DEFAULT_CACHE_TTL
                else {"type": "ephemeral"}
            )
        system.append(block)
        prompt = DOCUMENT_PROMPT
    system.append({"type": "text", "text": prompt.format(schema=schema.__name__)})
    return llm.anthropic_client().chat.completions.create(
        model=model,
        max_tokens=MAX_OUTPUT_TOKENS,
        response_model=schema,
        max_retries=VALIDATION_RETRIES,
        system=system,
        messages=[{"role": "user", "content": text}],
    )


def __getattr__(name: str) -> Callable[..., Any]:
    # "extractor.extraction:extract_UserDetail" names an entry's function; this lets
    # replay find it by import even before the form has used that schema.
    if name.startswith("extract_"):
        try:
            return extractor_for(name.removeprefix("extract_"))
        except LookupError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
