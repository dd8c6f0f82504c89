"""Runs the built-in extraction for the web form and reports what the cache did."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from extractor import extraction, recording
from extractor.caching import bypass, capture_calls
from extractor.caching.events import CallEvent
from extractor.llm import describe_provider_error
from extractor.models import Call, Entry


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

    @property
    def tokens_billed(self) -> int:
        return self.call.prompt_tokens + self.call.completion_tokens if self.call else 0


def extraction_run(
    *, text: str, schema_name: str, model: str, refresh: bool = False
) -> ExtractionResult:
    """Extract through the cache (or past it, for a refresh); a provider failure
    comes back as a readable error, its raw text on the recorded call."""
    output = None
    error = ""
    attempts = None
    with capture_calls() as records, bypass() if refresh else contextlib.nullcontext():
        try:
            output = extraction.extract(text, schema_name, model).model_dump(mode="json")
        except Exception as exc:
            error = describe_provider_error(exc)
            attempts = _attempts_of(exc)
    # The page shows the call's row and links to its entry, so write them now.
    recording.flush()
    key = _key_of(records[-1]) if records else ""
    call = Call.objects.filter(key=key).order_by("-created_at", "-id").first() if key else None
    entry = Entry.objects.filter(key=key, status=Entry.Status.LIVE).first() if key else None
    return ExtractionResult(
        output=output, error=error, call=call, entry=entry, refreshed=refresh, attempts=attempts
    )


def _attempts_of(exc: BaseException) -> int | None:
    attempts = getattr(exc, "n_attempts", None)
    return attempts if isinstance(attempts, int) and attempts > 0 else None


def _key_of(record: CallEvent | tuple[Any, ...]) -> str:
    return record.key if isinstance(record, CallEvent) else str(record[1])
