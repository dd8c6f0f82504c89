"""Invalidation: values leave the backend, rows are marked, history stays.

Two phases, so a failure halfway is never silent: first every matching live
row is marked INVALIDATING in one UPDATE (the Invalidation row records who,
when and what); then keys are deleted from the backend chunk by chunk, each
chunk's rows turning INVALIDATED once its delete returned. If the backend
fails, the rest stay INVALIDATING and the invalidation is FAILED; a retry
finishes exactly those rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from extractor import recording
from extractor.caching import registry
from extractor.caching.backends import CacheBackend
from extractor.caching.defaults import default_backend
from extractor.caching.events import describe_error
from extractor.models import Entry, Invalidation
from extractor.selectors.counting import Tally, count_or_estimate
from extractor.selectors.entries import InvalidationScope, entries_in_scope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("extractor.invalidation")

CHUNK = 1000
Progress = Callable[[int, int], None]  # (removed so far, matched)
# A RUNNING invalidation this old was cut off (its process died or its request was
# killed): its marked rows may be finished like a failed one's.
STALLED_AFTER = timedelta(minutes=15)


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
            .values_list("pk", "key", "function")[:CHUNK]
        )
        if not chunk:
            return
        by_backend: dict[int, tuple[CacheBackend, list[str]]] = {}
        for _pk, key, function in chunk:
            if function not in backends:
                backends[function] = backend_for(function)
            backend = backends[function]
            by_backend.setdefault(id(backend), (backend, []))[1].append(key)
        for backend, keys in by_backend.values():
            backend.delete_many(keys)
        yield [pk for pk, _key, _function in chunk]
        last_id = chunk[-1][0]


def backend_for(function: str) -> CacheBackend:
    """The backend a function's values live in: its own, or the process default."""
    cached = registry.find(function)
    return cached.backend() if cached is not None else default_backend()
