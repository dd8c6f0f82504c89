"""Invalidation: values leave the backend, rows are marked, history stays.

A request records the Invalidation and queues a job (extractor.tasks, on django-tasks);
a worker runs it, and `manage.py invalidate` runs the same steps in the foreground.
A run first claims the invalidation with a conditional UPDATE (QUEUED to RUNNING,
with a token of its own) and renews that lease before every chunk, so a job queued
twice, or run again after it finished, does nothing, and a run that lost the lease
stops before deleting more.

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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import F, Q
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
# Rows marked per transaction: big enough to be quick, small enough that the write
# lock (SQLite) or the row locks (PostgreSQL) are released every fraction of a second.
MARK_CHUNK = 10_000
# From this many marked rows on, PostgreSQL's statistics are refreshed before deleting.
REFRESH_STATISTICS_FROM = 50_000
Progress = Callable[[int, int], None]  # (removed so far, matched)
# A RUNNING invalidation without progress for this long was cut off (its worker died or
# was killed), a QUEUED one this old was never taken (no worker, or its job was lost):
# either may be retried. A run renews it before every chunk, seconds apart.
STALLED_AFTER = timedelta(minutes=5)


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


def invalidation_request(*, scope: InvalidationScope, by: User | None) -> Invalidation:
    """Record an invalidation of `scope` and queue the job that carries it out; returns
    at once (marking a million rows alone takes seconds, so that is the job's too)."""
    # The callers' records buffered in this process reach the table first, so the job
    # (in another process) matches values cached a moment ago.
    recording.flush()
    invalidation = Invalidation.objects.create(
        action=scope.action,
        target=scope.target,
        requested_by=by,
        status=Invalidation.Status.QUEUED,
    )
    return _enqueue(invalidation)


def invalidation_requeue(*, invalidation: Invalidation) -> bool:
    """Queue a job to finish a failed or stalled invalidation; False when it is not
    (or no longer) retryable, for example because another retry took it first."""
    if not _to_queued(invalidation):
        return False
    _enqueue(invalidation)
    return True


def invalidation_run(
    *,
    scope: InvalidationScope,
    by: User | None,
    progress: Progress | None = None,
) -> Invalidation:
    """The job, in the foreground (`manage.py invalidate`): same claim, same steps."""
    recording.flush()
    invalidation = Invalidation.objects.create(
        action=scope.action,
        target=scope.target,
        requested_by=by,
        status=Invalidation.Status.QUEUED,
    )
    return invalidation_work(invalidation_id=invalidation.pk, progress=progress) or invalidation


def invalidation_retry(
    *, invalidation: Invalidation, progress: Progress | None = None
) -> Invalidation:
    """Finish an invalidation that failed halfway (its rows still marked INVALIDATING),
    in the foreground. A retry that finds it taken changes nothing."""
    if _to_queued(invalidation):
        invalidation_work(invalidation_id=invalidation.pk, progress=progress)
    invalidation.refresh_from_db()
    return invalidation


def invalidation_work(
    *, invalidation_id: int, progress: Progress | None = None
) -> Invalidation | None:
    """Carry out a QUEUED invalidation: claim it, mark its rows (the first time), delete
    their keys chunk by chunk. None when there is nothing to do here: it is done, or
    another job holds it (a job queued twice, or run again after it finished)."""
    token = uuid.uuid4().hex
    claimed = Invalidation.objects.filter(
        pk=invalidation_id, status=Invalidation.Status.QUEUED
    ).update(status=Invalidation.Status.RUNNING, claimed_by=token, heartbeat_at=timezone.now())
    if not claimed:
        logger.info("invalidation %s: not queued (done, or taken by another job)", invalidation_id)
        return None
    logger.info("invalidation %s: claimed by run %s", invalidation_id, token)
    invalidation = Invalidation.objects.get(pk=invalidation_id)
    try:
        if invalidation.marked_at is None:
            _mark(invalidation, token)
        for removed in _delete_marked(invalidation, token):
            invalidation.removed += removed
            if progress is not None:
                progress(invalidation.removed, invalidation.matched)
    except LostClaim:
        logger.warning(
            "invalidation %s: run %s stopped, another run took it over", invalidation_id, token
        )
        return None
    except Exception as exc:
        logger.warning("invalidation %s stopped: %s", invalidation.pk, describe_error(exc))
        invalidation.status = Invalidation.Status.FAILED
        invalidation.error = describe_error(exc)
    else:
        invalidation.status = Invalidation.Status.DONE
        invalidation.finished_at = timezone.now()
    # Only while still its holder: a run that lost the lease leaves the outcome to the new one.
    Invalidation.objects.filter(pk=invalidation.pk, claimed_by=token).update(
        status=invalidation.status, error=invalidation.error, finished_at=invalidation.finished_at
    )
    invalidation.refresh_from_db()
    return invalidation


def invalidation_retryable(invalidation: Invalidation) -> bool:
    if invalidation.status == Invalidation.Status.FAILED:
        return True
    return _stalled(invalidation.status, invalidation.heartbeat_at)


def invalidation_waiting(invalidation: Invalidation) -> bool:
    """Queued or running and not stalled: its job is under way (the page polls)."""
    return invalidation.status in ACTIVE and not invalidation_retryable(invalidation)


ACTIVE = (Invalidation.Status.QUEUED, Invalidation.Status.RUNNING)


def _stalled(status: str, heartbeat_at: datetime) -> bool:
    # Queued that long: no worker took its job (none running, or the job was lost).
    # Running that long without progress: its worker died or was killed mid-run.
    return status in ACTIVE and heartbeat_at < timezone.now() - STALLED_AFTER


def _to_queued(invalidation: Invalidation) -> bool:
    """Put a failed or stalled invalidation back in the queue, in one conditional UPDATE,
    so of two retries at once only one wins."""
    retryable = Q(status=Invalidation.Status.FAILED) | Q(
        status__in=ACTIVE, heartbeat_at__lt=timezone.now() - STALLED_AFTER
    )
    return bool(
        Invalidation.objects.filter(retryable, pk=invalidation.pk).update(
            status=Invalidation.Status.QUEUED,
            error="",
            claimed_by="",
            heartbeat_at=timezone.now(),
        )
    )


def _enqueue(invalidation: Invalidation) -> Invalidation:
    # Imported here: the task module imports this one.
    from extractor.tasks import invalidate

    try:
        invalidate.enqueue(invalidation_id=invalidation.pk)
    except Exception as exc:
        # The queue is unreachable (its database or Redis): say so on the invalidation
        # rather than leave it queued for a job that does not exist; a retry queues again.
        logger.warning("invalidation %s: its job could not be queued: %s", invalidation.pk, exc)
        Invalidation.objects.filter(pk=invalidation.pk).update(
            status=Invalidation.Status.FAILED,
            error=f"its job could not be queued ({describe_error(exc)}); retry once the "
            "task queue is reachable",
        )
    invalidation.refresh_from_db()
    return invalidation


class LostClaim(Exception):
    """Another run holds the invalidation now (this one was taken for stalled)."""


def _renew(invalidation: Invalidation, token: str, **progress: object) -> None:
    """Prove this run still holds the invalidation, and record its progress."""
    held = Invalidation.objects.filter(pk=invalidation.pk, claimed_by=token).update(
        heartbeat_at=timezone.now(), **progress
    )
    if not held:
        raise LostClaim


def _mark(invalidation: Invalidation, token: str) -> None:
    """Mark every entry in scope INVALIDATING, MARK_CHUNK rows a transaction, then record
    the count and `marked_at` together, so a retry after a cut-off marks only the rest.

    Not one UPDATE of them all: a million rows is half a minute of SQLite's write lock
    (the recorders and the pages' writes would wait it out) and of row locks on
    PostgreSQL; in chunks the others write between two, and the page shows the count
    growing. Rows are read by primary key from where the last chunk stopped.
    """
    recording.flush()  # this process's own records, as the request flushed its own
    in_scope = entries_in_scope(InvalidationScope(invalidation.action, invalidation.target))
    now = timezone.now()
    last_id = 0
    while True:
        ids = list(
            in_scope.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:MARK_CHUNK]
        )
        if not ids:
            break
        with transaction.atomic():
            # First, so a run that lost the lease does not mark (the row lock also orders two).
            _renew(invalidation, token)
            marked = Entry.objects.filter(pk__in=ids, status=Entry.Status.LIVE).update(
                status=Entry.Status.INVALIDATING, invalidation=invalidation, status_changed_at=now
            )
            _renew(invalidation, token, matched=F("matched") + marked)
        last_id = ids[-1]
    # Every row this invalidation holds, a cut-off earlier run's marks included.
    matched = Entry.objects.filter(invalidation=invalidation).count()
    if matched >= REFRESH_STATISTICS_FROM and connection.vendor == "postgresql":
        # The planner's statistics still say no entry is marked: it would read the
        # marked rows through the status index and sort them all for every chunk
        # (0.9 s a chunk at a million). A sample of the table sets that right.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Entry._meta.db_table)}")
    _renew(invalidation, token, matched=matched, marked_at=now)
    invalidation.matched, invalidation.marked_at = matched, now


def _delete_marked(invalidation: Invalidation, token: str) -> Iterator[int]:
    """Delete the marked keys and finish their rows a chunk at a time; yield how many rows
    each chunk finished. Each chunk first renews the lease, so a run that lost it stops."""
    for ids in _delete_chunks(invalidation, before_delete=lambda: _renew(invalidation, token)):
        with transaction.atomic():
            # Counted from the UPDATE: a row another run finished is not counted twice.
            finished = Entry.objects.filter(pk__in=ids, status=Entry.Status.INVALIDATING).update(
                status=Entry.Status.INVALIDATED, status_changed_at=timezone.now()
            )
            _renew(invalidation, token, removed=F("removed") + finished)
        yield finished


def _delete_chunks(
    invalidation: Invalidation, before_delete: Callable[[], None]
) -> Iterator[list[int]]:
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
        before_delete()
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
