"""Invalidations as jobs: the real worker runs them, each once, however often queued."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from extractor import tasks
from extractor.caching.defaults import default_backend
from extractor.models import Entry, Invalidation
from extractor.selectors.entries import InvalidationScope
from extractor.services import invalidation as service
from tests.factories import EntryFactory

FUNCTION = "extractor.extraction:extract_UserDetail"
ROOT = Path(__file__).resolve().parents[2]
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
DUMMY_BACKEND = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="ada", is_staff=True))
    return client


def cached_entries(count: int, **fields) -> list[Entry]:
    entries = EntryFactory.create_batch(count, function=FUNCTION, **fields)
    for entry in entries:
        default_backend().set(entry.key, '{"a": "value"}')
    return entries


@contextmanager
def database_for_workers(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL at which another process sees this test's (committed) rows.

    PostgreSQL: the test database itself. SQLite: the test database is in memory, so
    the workers get a file copy, and what they wrote is copied back afterwards."""
    db = connection.settings_dict
    if connection.vendor != "sqlite":
        user = quote(db["USER"] or "")
        password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
        yield f"postgres://{user}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        return
    path = tmp_path / "workers.sqlite3"
    connection.ensure_connection()
    with closing(sqlite3.connect(path)) as copy:
        connection.connection.backup(copy)
    yield f"sqlite:///{path}"
    with closing(sqlite3.connect(path)) as copy:
        copy.backup(connection.connection)


def run_workers(
    count: int, jobs_each: int, database_url: str, cache_url: str, tmp_path: Path
) -> list[str]:
    """`manage.py db_worker --batch` in `count` processes at once, each stopping after
    `jobs_each` jobs or at an empty queue; their output (the task log and ours)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXTRACTOR_CACHE_URL": cache_url,
        "CACHESITE_DATA_DIR": str(tmp_path / "data"),
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "DJANGO_DEBUG": "1",  # a local worker: no production checks on the test's settings
    }
    command = [sys.executable, "manage.py", "db_worker", "--batch", "--no-reload"]
    command += ["--no-startup-delay", "--interval", "0", "--max-tasks", str(jobs_each)]
    workers = [
        subprocess.Popen(
            [*command, "--worker-id", f"worker-{number}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for number in range(count)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * count, outputs
    return outputs


@pytest.mark.django_db(transaction=True)
def test_two_workers_run_every_queued_invalidation_once(staff_client, settings, tmp_path):
    settings.TASKS = DATABASE_BACKEND
    models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"]
    entries = {model: cached_entries(4, llm_model=model) for model in models}
    for model in models:
        staff_client.post(reverse("extractor:invalidate"), {"action": "model", "target": model})
    invalidations = {i.target: i for i in Invalidation.objects.all()}
    # The same invalidation queued twice (a double submit, a retry racing a slow job).
    tasks.invalidate.enqueue(invalidation_id=invalidations["gpt-4o"].pk)
    assert DBTaskResult.objects.ready().count() == 4

    with database_for_workers(tmp_path) as url:
        # Two jobs at most each: both workers take part, whichever starts first.
        outputs = run_workers(2, 2, url, settings.EXTRACTOR_CACHE_URL, tmp_path)

    assert [output.count("state=SUCCESSFUL") for output in outputs] == [2, 2]
    log = "\n".join(outputs)
    for model, invalidation in invalidations.items():
        invalidation.refresh_from_db()
        assert (invalidation.status, invalidation.matched, invalidation.removed) == (
            "done",
            4,
            4,
        )
        # One run took it, whichever worker had its jobs.
        assert len(re.findall(rf"invalidation {invalidation.pk}: claimed by run", log)) == 1
        assert all(default_backend().get(entry.key) is None for entry in entries[model])
    assert set(Entry.objects.values_list("status", flat=True)) == {Entry.Status.INVALIDATED}
    jobs = list(DBTaskResult.objects.all())
    assert {job.status for job in jobs} == {"SUCCESSFUL"}
    assert all(len(job.worker_ids) == 1 for job in jobs)
    assert sorted(job.return_value["ran"] for job in jobs) == [False, True, True, True]
    page = staff_client.get(reverse("extractor:invalidation", args=[invalidations["gpt-4o"].pk]))
    assert 'data-testid="status">Done<' in page.content.decode()


def test_the_page_s_progress_advances_with_every_chunk(monkeypatch):
    monkeypatch.setattr(service, "CHUNK", 2)
    cached_entries(5)
    seen: list[int] = []

    service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION),
        by=None,
        # What the page polls: the row, as another process reads it.
        progress=lambda removed, matched: seen.append(Invalidation.objects.get().removed),
    )

    assert seen == [2, 4, 5]


def test_a_job_run_again_finds_it_done_and_does_nothing():
    cached_entries(2)
    invalidation = service.invalidation_request(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION), by=None
    )
    assert invalidation.status == Invalidation.Status.DONE  # the immediate backend ran it
    later = cached_entries(1)  # cached after it: not the invalidation's

    result = tasks.invalidate.call(invalidation_id=invalidation.pk)

    assert result == {"invalidation": invalidation.pk, "ran": False}
    invalidation.refresh_from_db()
    assert (invalidation.matched, invalidation.removed) == (2, 2)
    assert default_backend().get(later[0].key) is not None


def test_a_run_that_lost_its_lease_stops_before_the_next_chunk(monkeypatch):
    monkeypatch.setattr(service, "CHUNK", 2)
    entries = cached_entries(5)

    def taken_over_after_the_first_chunk(removed: int, matched: int) -> None:
        Invalidation.objects.update(claimed_by="another-run")

    result = service.invalidation_run(
        scope=InvalidationScope(Invalidation.Action.FUNCTION, FUNCTION),
        by=None,
        progress=taken_over_after_the_first_chunk,
    )

    invalidation = Invalidation.objects.get()
    assert result.pk == invalidation.pk
    # The outcome is the new holder's to write; the rest are left to it.
    assert (invalidation.status, invalidation.removed) == (Invalidation.Status.RUNNING, 2)
    assert sorted(invalidation.entries.values_list("status", flat=True)) == (
        ["invalidated"] * 2 + ["invalidating"] * 3
    )
    assert sum(default_backend().get(entry.key) is not None for entry in entries) == 3


def test_of_two_retries_at_once_only_one_queues_a_job(settings):
    settings.TASKS = DUMMY_BACKEND
    failed = Invalidation.objects.create(action="function", target=FUNCTION, status="failed")

    first = service.invalidation_requeue(invalidation=failed)
    second = service.invalidation_requeue(invalidation=failed)

    assert (first, second) == (True, False)
    failed.refresh_from_db()
    assert failed.status == Invalidation.Status.QUEUED
