"""Invalidation: values leave the backend, rows are marked, history stays.

Two phases, so a failure halfway is never silent: first every matching live
row is marked INVALIDATING in one UPDATE (the Invalidation row records who,
when and what); then keys are deleted from the backend chunk by chunk, each
chunk's rows turning INVALIDATED once its delete returned. If the backend
fails, or a function's backend cannot be known (its code cannot be imported
here), the rest stay INVALIDATING and the invalidation is FAILED; a retry
finishes exactly those rows.

The backend says how many of the keys it held. Fewer is not a failure: a value
expires, is evicted, or went in an earlier attempt whose rows were not yet
marked, and gone is what was asked. It is logged with the function, since
a shortfall on values that had not expired can also mean this process reaches
another backend than the callers do (a setting that differs between them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from extractor import recording
from extractor.caching import registry
from extractor.caching.backends import CacheBackend
from extractor.caching.events import describe_error
from extractor.models import Entry, Invalidation
from extractor.selectors.counting import Tally, count_or_estimate
from extractor.selectors.entries import (
    EntryState,
    InvalidationScope,
    current_code,
    entries_in_scope,
    entries_in_state,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("extractor.invalidation")

CHUNK = 1000
Progress = Callable[[int, int], None]  # (removed so far, matched)
# A RUNNING invalidation this old was cut off (its process died or its request was
# killed): its marked rows may be finished like a failed one's.
STALLED_AFTER = timedelta(minutes=15)


class BackendUnknown(Exception):
    """A function's values cannot be reached: which backend holds them is unknown here."""


def invalidation_count(scope: InvalidationScope) -> int:
    """How many live entries an invalidation of `scope` would touch."""
    recording.flush()
    return entries_in_scope(scope).count()


def invalidation_tally(scope: InvalidationScope) -> Tally:
    """What the confirm page says an invalidation of `scope` would touch: exact up
    to a thousand entries (read through the scope's index), estimated beyond; the
    invalidation records the exact number it marks."""
    recording.flush()
    return count_or_estimate(entries_in_scope(scope))


@dataclass(frozen=True)
class ScopeSplit:
    """The entries of a scope as the Entries page names them: an invalidation
    drops every value still cached, but only the live ones are served to callers."""

    live: Tally
    stale: Tally
    expired: int | None  # the rest, neither live nor stale; None unless all counts are exact


def invalidation_split(scope: InvalidationScope, total: Tally) -> ScopeSplit:
    """Live (not stale, not expired) and stale entries of `scope` out of `total`
    (invalidation_tally's, which flushed the recorder), each counted through the
    scope's index with the per-function stale condition."""
    entries = entries_in_scope(scope)
    current = current_code()
    live = count_or_estimate(entries_in_state(entries, EntryState.LIVE, current))
    stale = count_or_estimate(entries_in_state(entries, EntryState.STALE, current))
    exact = total.exact and live.exact and stale.exact
    expired = total.value - live.value - stale.value if exact else None
    return ScopeSplit(live=live, stale=stale, expired=expired)


def invalidation_run(
    *,
    scope: InvalidationScope,
    by: User | None,
    progress: Progress | None = None,
) -> Invalidation:
    recording.flush()  # rows for values cached a moment ago must be matched too
    now = timezone.now()
    with transaction.atomic():
        invalidation = Invalidation.objects.create(
            action=scope.action,
            target=scope.target,
            requested_by=by,
            created_at=now,
        )
        matched = entries_in_scope(scope).update(
            status=Entry.Status.INVALIDATING, invalidation=invalidation, status_changed_at=now
        )
        invalidation.matched = matched
        invalidation.save(update_fields=["matched"])
    return _delete_marked(invalidation, progress)


def invalidation_retry(
    *, invalidation: Invalidation, progress: Progress | None = None
) -> Invalidation:
    """Finish an invalidation that failed halfway: its rows still marked INVALIDATING."""
    invalidation.status = Invalidation.Status.RUNNING
    invalidation.error = ""
    invalidation.save(update_fields=["status", "error"])
    return _delete_marked(invalidation, progress)


def invalidation_retryable(invalidation: Invalidation) -> bool:
    if invalidation.status == Invalidation.Status.FAILED:
        return True
    return (
        invalidation.status == Invalidation.Status.RUNNING
        and invalidation.created_at < timezone.now() - STALLED_AFTER
    )


def _delete_marked(invalidation: Invalidation, progress: Progress | None) -> Invalidation:
    try:
        for ids in _delete_chunks(invalidation):
            Entry.objects.filter(pk__in=ids).update(
                status=Entry.Status.INVALIDATED, status_changed_at=timezone.now()
            )
            invalidation.removed += len(ids)
            Invalidation.objects.filter(pk=invalidation.pk).update(removed=invalidation.removed)
            if progress is not None:
                progress(invalidation.removed, invalidation.matched)
    except Exception as exc:
        logger.warning("invalidation %s stopped: %s", invalidation.pk, describe_error(exc))
        invalidation.status = Invalidation.Status.FAILED
        invalidation.error = describe_error(exc)
    else:
        invalidation.status = Invalidation.Status.DONE
        invalidation.finished_at = timezone.now()
    invalidation.save(update_fields=["status", "error", "finished_at", "removed"])
    return invalidation


def _delete_chunks(invalidation: Invalidation) -> Iterator[list[int]]:
    """Delete the marked keys from their backends, a chunk at a time (keyset paging);
    yield the ids of each chunk once its keys are gone."""
    marked = Entry.objects.filter(invalidation=invalidation, status=Entry.Status.INVALIDATING)
    backends: dict[str, CacheBackend] = {}
    last_id = 0
    while True:
        chunk = list(
            marked.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "key", "function", "expires_at")[:CHUNK]
        )
        if not chunk:
            return
        now = timezone.now()
        by_backend: dict[int, _Deletion] = {}
        for _pk, key, function, expires_at in chunk:
            if function not in backends:
                backends[function] = backend_for(function)
            backend = backends[function]
            deletion = by_backend.setdefault(id(backend), _Deletion(backend))
            deletion.keys.append(key)
            deletion.functions.add(function)
            deletion.expired += expires_at is not None and expires_at <= now
        for deletion in by_backend.values():
            found = deletion.backend.delete_many(deletion.keys)
            _check_count(invalidation, deletion, found)
        yield [pk for pk, _key, _function, _expires in chunk]
        last_id = chunk[-1][0]


@dataclass
class _Deletion:
    """One backend's share of a chunk: its keys, whose they are, how many had expired."""

    backend: CacheBackend
    keys: list[str] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    expired: int = 0


def _check_count(invalidation: Invalidation, deletion: _Deletion, found: int) -> None:
    expected = len(deletion.keys)
    if found == expected:
        return
    functions = ", ".join(sorted(deletion.functions))
    if found > expected:
        # Keys are unique per live row: more deleted than asked means the backend
        # counts something else, and its counts cannot be trusted.
        logger.error(
            "invalidation %s: the backend of %s reported %d keys deleted for %d asked",
            invalidation.pk,
            functions,
            found,
            expected,
        )
        return
    logger.warning(
        "invalidation %s: %d of %d keys were not in the backend of %s (%d of them past "
        "their expiry); if values that had not expired are missing, check this process "
        "uses the same cache settings as the callers",
        invalidation.pk,
        expected - found,
        expected,
        functions,
        min(deletion.expired, expected - found),
    )


def backend_for(function: str) -> CacheBackend:
    """The backend a function's values live in. Never a guess: a function that cannot
    be found here may keep its values in a backend of its own, and deleting from the
    default one would mark rows invalidated while their values stay cached."""
    cached, why = registry.locate(function)
    if cached is None:
        raise BackendUnknown(
            f"cannot tell which backend holds the values of {function} ({why}), so none "
            "were deleted; make it importable where this runs (deploy the code that "
            "defines it), or retry from a process where it is"
        )
    return cached.backend()
