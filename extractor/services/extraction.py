"""Runs the built-in extraction for the web form and reports what the cache did."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from extractor import extraction, recording
from extractor.caching import bypass, capture_calls
from extractor.caching.events import CallEvent
from extractor.llm import describe_provider_error
from extractor.models import Call, Document, Entry
from extractor.services.documents import document_store


@dataclass(frozen=True)
class ExtractionResult:
    output: dict[str, Any] | None
    error: str
    # The recorded call and the entry it read or wrote (None when the call failed
    # before the cache was consulted). After a refresh, the entry is the value
    # the cache still holds: a bypass stores nothing.
    call: Call | None
    entry: Entry | None
    refreshed: bool = False
    # How many times Instructor asked the provider before it gave up (None when
    # the error did not come from its retries).
    attempts: int | None = None
    # The context document sent before the question, and whether it was marked for
    # the provider's prompt cache (None without a document).
    document: Document | None = None
    cache_plan: extraction.PromptCachePlan | None = None
    cache_ttl: str = extraction.DEFAULT_CACHE_TTL

    @property
    def tokens_billed(self) -> int:
        return self.call.prompt_tokens + self.call.completion_tokens if self.call else 0

    @property
    def cache_ttl_label(self) -> str:
        return extraction.CACHE_TTLS.get(self.cache_ttl, self.cache_ttl)

    @property
    def provider_called(self) -> bool:
        """Whether the provider saw this run (a response-cache hit asks it nothing)."""
        return self.call is not None and self.call.outcome != Call.Outcome.HIT


def extraction_run(
    *,
    text: str,
    schema_name: str,
    model: str,
    refresh: bool = False,
    document_text: str = "",
    document_name: str = "",
    cache_ttl: str = extraction.DEFAULT_CACHE_TTL,
) -> ExtractionResult:
    """Extract through the cache (or past it, for a refresh); a provider failure
    comes back as a readable error, its raw text on the recorded call. A context
    document is stored once (by hash) and sent before the question."""
    output = None
    error = ""
    attempts = None
    document = document_store(document_name, document_text) if document_text else None
    plan = extraction.prompt_cache_plan(model, document_text) if document else None
    with capture_calls() as records, bypass() if refresh else contextlib.nullcontext():
        try:
            result = extraction.extract(
                text, schema_name, model, document=document, cache_ttl=cache_ttl
            )
            output = result.model_dump(mode="json")
        except Exception as exc:
            error = describe_provider_error(exc)
            attempts = _attempts_of(exc)
    # The page shows the call's row and links to its entry, so write them now.
    recording.flush()
    key = _key_of(records[-1]) if records else ""
    call = Call.objects.filter(key=key).order_by("-created_at", "-id").first() if key else None
    entry = Entry.objects.filter(key=key, status=Entry.Status.LIVE).first() if key else None
    return ExtractionResult(
        output=output,
        error=error,
        call=call,
        entry=entry,
        refreshed=refresh,
        attempts=attempts,
        document=document,
        cache_plan=plan,
        cache_ttl=cache_ttl,
    )


def _attempts_of(exc: BaseException) -> int | None:
    attempts = getattr(exc, "n_attempts", None)
    return attempts if isinstance(attempts, int) and attempts > 0 else None


def _key_of(record: CallEvent | tuple[Any, ...]) -> str:
    return record.key if isinstance(record, CallEvent) else str(record[1])
