"""Runs the built-in extraction for the web form and reports what the cache did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extractor import extraction, recording
from extractor.caching import capture_calls
from extractor.caching.events import CallEvent
from extractor.llm import describe_provider_error
from extractor.models import Call, Entry


@dataclass(frozen=True)
class ExtractionResult:
    output: dict[str, Any] | None
    error: str
    # The recorded call and the entry it read or wrote (None when the call failed
    # before the cache was consulted).
    call: Call | None
    entry: Entry | None


def extraction_run(*, text: str, schema_name: str, model: str) -> ExtractionResult:
    """Extract through the cache; a provider failure comes back as a readable error."""
    output = None
    error = ""
    with capture_calls() as records:
        try:
            output = extraction.extract(text, schema_name, model).model_dump(mode="json")
        except Exception as exc:
            error = describe_provider_error(exc)
    # The page shows the call's row and links to its entry, so write them now.
    recording.flush()
    key = _key_of(records[-1]) if records else ""
    call = Call.objects.filter(key=key).order_by("-created_at", "-id").first() if key else None
    entry = Entry.objects.filter(key=key, status=Entry.Status.LIVE).first() if key else None
    return ExtractionResult(output=output, error=error, call=call, entry=entry)


def _key_of(record: CallEvent | tuple[Any, ...]) -> str:
    return record.key if isinstance(record, CallEvent) else str(record[1])
