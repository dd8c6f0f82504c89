"""services.invalidation: two phases, so a backend failure halfway is never silent."""

from __future__ import annotations

import pytest

from extractor.caching.defaults import default_backend
from extractor.models import Entry, Invalidation
from extractor.selectors.entries import InvalidationScope
from extractor.services import invalidation as service
from tests.factories import EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

FUNCTION = "extractor.extraction:extract_UserDetail"


def cached_entries(count: int, **fields) -> list[Entry]:
    """Rows whose keys really hold a value in the function's (default) backend."""
    entries = EntryFactory.create_batch(count, function=FUNCTION, **fields)
    for entry in entries:
        default_backend().set(entry.key, '{"a": "value"}')
    return entries


def statuses_of(invalidation: Invalidation) -> list[str]:
    return sorted(invalidation.entries.values_list("status", flat=True))


def test_the_count_is_the_live_entries_in_scope():
    version = SchemaVersionFactory()
    cached_entries(3, schema_version=version)
    EntryFactory(schema_version=version, status=Entry.Status.REPLACED)
    EntryFactory()  # another version

    scope = InvalidationScope(Invalidation.Action.SCHEMA_VERSION, str(version.pk))

    assert service.invalidation_count(scope) == 3


def test_a_run_deletes_the_keys_and_reports_progress_per_chunk(monkeypatch):
    monkeypatch.setattr(service, "CHUNK", 2)
    entries = cached_entries(5)
    seen: list[tuple[int, int]] = []

    invalidation = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION),
        by=None,
        progress=lambda removed, matched: seen.append((removed, matched)),
    )

    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert (invalidation.status, invalidation.matched, invalidation.removed) == ("done", 5, 5)
    assert all(default_backend().get(entry.key) is None for entry in entries)
    assert set(Entry.objects.values_list("status", flat=True)) == {Entry.Status.INVALIDATED}


def test_marking_goes_a_chunk_at_a_time_and_counts_every_row(monkeypatch):
    monkeypatch.setattr(service, "MARK_CHUNK", 2)
    entries = cached_entries(5)
    EntryFactory(function=FUNCTION, status=Entry.Status.REPLACED)  # not live: left alone
    transactions = []
    real_renew = service._renew
    monkeypatch.setattr(
        service,
        "_renew",
        lambda *args, **kwargs: (transactions.append(kwargs), real_renew(*args, **kwargs))[1],
    )

    invalidation = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION), by=None
    )

    assert (invalidation.status, invalidation.matched, invalidation.removed) == ("done", 5, 5)
    # Three marking chunks (2, 2, 1), each counted as it commits, then the exact count.
    counted = [kwargs["matched"] for kwargs in transactions if "matched" in kwargs]
    assert len(counted) == 4
    assert counted[-1] == 5
    assert sorted(invalidation.entries.values_list("pk", flat=True)) == sorted(
        e.pk for e in entries
    )


def test_a_backend_failure_halfway_leaves_the_rest_marked_for_a_retry(
    monkeypatch, settings, redis_servers
):
    monkeypatch.setattr(service, "CHUNK", 2)
    server = redis_servers()
    settings.EXTRACTOR_CACHE_URL = server.url
    cached_entries(5)
    bystander = EntryFactory(function="tests.other:extract")

    def cut_redis_after_the_first_chunk(removed: int, matched: int) -> None:
        if removed == 2:
            server.stop()

    invalidation = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION),
        by=None,
        progress=cut_redis_after_the_first_chunk,
    )

    invalidation.refresh_from_db()
    assert invalidation.status == Invalidation.Status.FAILED
    assert invalidation.error
    assert (invalidation.matched, invalidation.removed) == (5, 2)
    assert statuses_of(invalidation) == ["invalidated"] * 2 + ["invalidating"] * 3

    fresh = redis_servers()  # Redis is reachable again
    settings.EXTRACTOR_CACHE_URL = fresh.url
    retried = service.invalidation_retry(invalidation=invalidation)

    retried.refresh_from_db()
    assert (retried.status, retried.removed, retried.error) == ("done", 5, "")
    assert retried.finished_at is not None
    assert statuses_of(invalidation) == ["invalidated"] * 5
    bystander.refresh_from_db()
    assert (bystander.status, bystander.invalidation) == (Entry.Status.LIVE, None)


def test_a_retry_finishes_only_its_own_marked_rows(settings, redis_servers):
    server = redis_servers()
    settings.EXTRACTOR_CACHE_URL = server.url
    cached_entries(2, llm_model="gpt-4o")
    server.stop()
    failed = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.MODEL, "gpt-4o"), by=None
    )
    assert failed.status == Invalidation.Status.FAILED
    settings.EXTRACTOR_CACHE_URL = redis_servers().url
    live = cached_entries(2, llm_model="gpt-4o-mini")

    service.invalidation_retry(invalidation=failed)

    assert set(failed.entries.values_list("status", flat=True)) == {Entry.Status.INVALIDATED}
    still_live = Entry.objects.filter(status=Entry.Status.LIVE)
    assert set(still_live.values_list("pk", flat=True)) == {entry.pk for entry in live}


GONE = "tests.no_such_module:extract"


def test_a_function_that_cannot_be_imported_fails_the_run_instead_of_guessing_a_backend():
    # Its values sit in the default backend: a guess would find and delete them here,
    # but in production its own backend may be another Redis, and the guess would mark
    # rows invalidated while their values stay cached.
    entries = EntryFactory.create_batch(2, function=GONE)
    for entry in entries:
        default_backend().set(entry.key, '{"a": "value"}')

    invalidation = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, GONE), by=None
    )

    invalidation.refresh_from_db()
    assert invalidation.status == Invalidation.Status.FAILED
    assert GONE in invalidation.error
    assert "make it importable" in invalidation.error
    assert service.invalidation_retryable(invalidation)
    assert statuses_of(invalidation) == ["invalidating"] * 2
    assert invalidation.removed == 0
    assert all(default_backend().get(entry.key) is not None for entry in entries)


def test_keys_the_backend_no_longer_held_are_logged(caplog):
    entries = cached_entries(3)
    default_backend().delete(entries[0].key)  # expired or evicted before the run

    with caplog.at_level("WARNING", logger="extractor.invalidation"):
        invalidation = service.invalidation_run(
            scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION), by=None
        )

    # Gone is what was asked: the rows are finished, and the shortfall is said.
    assert (invalidation.status, invalidation.removed) == ("done", 3)
    assert statuses_of(invalidation) == ["invalidated"] * 3
    [record] = [r for r in caplog.records if "not in the backend" in r.getMessage()]
    assert "1 of 3 keys" in record.getMessage()
    assert FUNCTION in record.getMessage()
