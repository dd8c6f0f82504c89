"""Replay: re-run an entry's call against the LLM, compare, keep or replace.

The replay itself stores nothing in the cache (it is recorded as a "replay"
call); the fresh output is kept in a Replay row until the user decides.
"""

from __future__ import annotations

import asyncio
import contextlib
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from extractor import recording
from extractor.caching import call_labels, registry
from extractor.caching.decorator import CachedFunction
from extractor.caching.usage import Usage, completion_info
from extractor.llm import describe_provider_error
from extractor.models import Entry, Replay
from extractor.recording.writer import store_entry
from extractor.redaction import MASK

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ReplayImpossible(Exception):
    """The entry's call cannot be re-invoked; the message says why."""


def replay_target(entry: Entry) -> CachedFunction:
    """The function behind `entry`, or ReplayImpossible explaining why not."""
    cached, why = registry.locate(entry.function)
    if cached is None:
        raise ReplayImpossible(f"{entry.function} cannot be re-invoked: {why}.")
    if cached.info.has_key_function or not isinstance(entry.arguments, dict):
        raise ReplayImpossible(
            "This entry's arguments were not recorded (its function uses a key function, "
            "or the entry was first seen on a hit), so its call cannot be repeated."
        )
    if _holds_mask(entry.arguments):
        # A secret was masked before the arguments were stored: replaying "***"
        # would ask another question, and accepting it would write the wrong key.
        raise ReplayImpossible(
            "A secret in this entry's arguments was masked before they were stored, "
            "so its call cannot be repeated from here; call the function with the real "
            "arguments instead."
        )
    if _holds_typed_value(entry.arguments):
        raise ReplayImpossible(
            "This entry's arguments include values JSON has no form for (an Enum, a "
            "Decimal, a Path, a model...): they are stored in their key form, which "
            "cannot be passed back to the function. Call it with the real arguments."
        )
    return cached


def _holds_mask(value: Any) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, dict):
        return any(_holds_mask(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_mask(item) for item in value)
    return False


def _holds_typed_value(value: Any) -> bool:
    """A type tag of the key's argument encoding ({"$enum": ...}), or an escaped "$" key."""
    if isinstance(value, dict):
        return any(
            (isinstance(name, str) and name.startswith("$")) or _holds_typed_value(item)
            for name, item in value.items()
        )
    if isinstance(value, list):
        return any(_holds_typed_value(item) for item in value)
    return False


def entry_replay(*, entry: Entry, by: User | None) -> Replay:
    """Call the LLM for real with the entry's arguments; nothing is cached."""
    cached = replay_target(entry)
    arguments: dict[str, Any] = entry.arguments  # type: ignore[assignment]  # checked above
    # The replay's call row joins the entry's context document, as its first call did.
    labels = (
        call_labels(document=entry.document_sha) if entry.document_sha else contextlib.nullcontext()
    )
    started = perf_counter()
    try:
        with labels:
            if cached.is_async:
                result = asyncio.run(cached.areplay(**arguments))
            else:
                result = cached.replay(**arguments)
    except ReplayImpossible:
        raise
    except TypeError as exc:
        recording.flush()
        raise ReplayImpossible(f"The stored arguments no longer fit the function: {exc}") from exc
    except Exception as exc:
        recording.flush()
        raise ReplayImpossible(describe_provider_error(exc)) from exc
    latency_ms = (perf_counter() - started) * 1000
    recording.flush()
    # The library reads every provider's usage (Anthropic names and counts it otherwise).
    info = completion_info(getattr(result, "_raw_response", None))
    return Replay.objects.create(
        entry=entry,
        output=result.model_dump(mode="json"),
        llm_model=info.model,
        prompt_tokens=info.usage.prompt_tokens,
        completion_tokens=info.usage.completion_tokens,
        cached_prompt_tokens=info.usage.cached_prompt_tokens,
        cache_write_tokens=info.usage.cache_write_tokens,
        cache_write_1h_tokens=info.usage.cache_write_1h_tokens,
        latency_ms=latency_ms,
        requested_by=by,
    )


class ReplaceRefused(Exception):
    pass


def replay_accept(*, replay: Replay, by: User | None) -> Entry:
    """Store the replay's output as the cached value; the old entry becomes "replaced".

    The value goes under the key the function uses now: for an entry that is
    stale (code or schema changed since), that is a different key than its own.
    """
    entry = replay.entry
    if replay.accepted_at is not None:
        raise ReplaceRefused("This replay was already used to replace the entry.")
    if entry.status != Entry.Status.LIVE:
        raise ReplaceRefused(
            f"The entry is {entry.get_status_display().lower()} now; replay it again."
        )
    cached = replay_target(entry)
    arguments: dict[str, Any] = entry.arguments  # type: ignore[assignment]  # checked above
    output = cached.response_model.model_validate(replay.output)
    key = cached.cache_key(**arguments)
    envelope = cached.envelope_type(
        schema_fingerprint=cached.info.schema_fingerprint,
        output=output,
        llm_provider=entry.llm_provider,
        llm_model=replay.llm_model or entry.llm_model,
        usage=Usage(
            prompt_tokens=replay.prompt_tokens,
            completion_tokens=replay.completion_tokens,
            cached_prompt_tokens=replay.cached_prompt_tokens,
            cache_write_tokens=replay.cache_write_tokens,
            cache_write_1h_tokens=replay.cache_write_1h_tokens,
        ),
        latency_ms=replay.latency_ms,
        created_at=time(),
    )
    ttl = cached.ttl()
    with transaction.atomic():
        replaced = Entry.objects.filter(pk=entry.pk, status=Entry.Status.LIVE).update(
            status=Entry.Status.REPLACED, status_changed_at=timezone.now()
        )
        if not replaced:
            raise ReplaceRefused(
                "The entry changed while you looked at the replay; replay it again."
            )
        replacement = store_entry(
            info=cached.info, key=key, envelope=envelope, arguments=arguments, ttl=ttl
        )
        replay.accepted_at = timezone.now()
        replay.replacement = replacement
        replay.save(update_fields=["accepted_at", "replacement"])
        # Last, inside the transaction: if the backend refuses the value, the rows
        # roll back and nothing claims a value the cache does not hold.
        cached.backend().set(key, envelope.model_dump_json(), ttl)
    return replacement
