"""manage.py invalidate: counts, asks, invalidates, and fails loudly."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from extractor.caching.defaults import default_backend
from extractor.models import Entry, Invalidation
from tests.factories import EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

FUNCTION = "extractor.extraction:extract_UserDetail"


def run(*args: str, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("invalidate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def entries() -> list[Entry]:
    rows = EntryFactory.create_batch(3, function=FUNCTION)
    for row in rows:
        default_backend().set(row.key, '{"a": "value"}')
    EntryFactory(function="extractor.extraction:extract_Character")  # another function
    return rows


def test_yes_invalidates_and_prints_the_count(entries):
    out, _ = run("--function", FUNCTION, "--yes")

    assert f"Invalidating 3 entries of function {FUNCTION}." in out
    assert "Invalidated 3 entries (invalidation #" in out
    invalidation = Invalidation.objects.get()
    assert (invalidation.action, invalidation.target, invalidation.status) == (
        "function",
        FUNCTION,
        "done",
    )
    assert invalidation.requested_by is None
    assert invalidation.entries.count() == 3
    assert all(default_backend().get(entry.key) is None for entry in entries)
    assert Entry.objects.filter(status=Entry.Status.LIVE).count() == 1


def test_it_asks_first_and_a_no_changes_nothing(entries, monkeypatch):
    with pytest.raises(CommandError, match="Cancelled; nothing was invalidated"):
        run("--function", FUNCTION, stdin="n\n", monkeypatch=monkeypatch)

    assert not Invalidation.objects.exists()
    assert Entry.objects.filter(status=Entry.Status.LIVE).count() == 4


def test_a_yes_at_the_prompt_invalidates(entries, monkeypatch):
    out, _ = run("--stale", stdin="y\n", monkeypatch=monkeypatch)

    # Nothing is stale: no prompt (the answer stays unread) and nothing changes.
    assert "Nothing to invalidate" in out
    assert sys.stdin.read() == "y\n"
    assert not Invalidation.objects.exists()

    out, _ = run("--model", "gpt-4o-mini", stdin="y\n", monkeypatch=monkeypatch)

    assert "Invalidated 4 entries" in out
    assert Invalidation.objects.get().status == "done"
    assert not Entry.objects.filter(status=Entry.Status.LIVE).exists()
    assert all(default_backend().get(entry.key) is None for entry in entries)


def test_a_schema_version(entries):
    version = SchemaVersionFactory()
    EntryFactory.create_batch(2, schema_version=version)

    out, _ = run("--schema-version", str(version.pk), "--yes")

    assert "Invalidated 2 entries" in out
    assert Invalidation.objects.get().target == str(version.pk)


def test_nothing_to_do_says_so(entries):
    out, _ = run("--model", "gpt-99", "--yes")

    assert "Nothing to invalidate: no entries of LLM model gpt-99 still hold a value." in out
    assert not Invalidation.objects.exists()


def test_verbosity_zero_prints_nothing(entries):
    out, err = run("--entry", str(entries[0].pk), "--yes", "--verbosity", "0")

    assert (out, err) == ("", "")
    assert Entry.objects.get(pk=entries[0].pk).status == Entry.Status.INVALIDATED


def test_a_scope_is_required():
    with pytest.raises(CommandError, match="one of the arguments"):
        run("--yes")


def test_a_failure_exits_non_zero_and_a_retry_finishes(settings, redis_servers):
    server = redis_servers()
    settings.EXTRACTOR_CACHE_URL = server.url
    EntryFactory.create_batch(2, function=FUNCTION)
    server.stop()

    with pytest.raises(CommandError, match=r"failed after 0 of 2: ConnectionError") as failure:
        run("--function", FUNCTION, "--yes")

    invalidation = Invalidation.objects.get()
    assert f"manage.py invalidate --retry {invalidation.pk}" in str(failure.value)
    assert invalidation.status == Invalidation.Status.FAILED

    settings.EXTRACTOR_CACHE_URL = redis_servers().url
    out, _ = run("--retry", str(invalidation.pk), "--yes")

    assert f"Invalidating the 2 entries invalidation #{invalidation.pk} left marked." in out
    invalidation.refresh_from_db()
    assert invalidation.status == Invalidation.Status.DONE
    assert set(invalidation.entries.values_list("status", flat=True)) == {"invalidated"}


def test_only_a_failed_invalidation_can_be_retried(entries):
    run("--function", FUNCTION, "--yes")
    done = Invalidation.objects.get()

    with pytest.raises(CommandError, match="is done; only a failed or stalled one can be retried"):
        run("--retry", str(done.pk), "--yes")
    with pytest.raises(CommandError, match="There is no invalidation #999"):
        run("--retry", "999", "--yes")


def test_verbosity_two_leaves_the_progress_bar_on_stderr(entries):
    out, err = run("--function", FUNCTION, "--yes", "--verbosity", "2")

    assert "Deleting from the backend" in err
    assert "Deleting" not in out
    assert "Invalidated 3 entries" in out


def test_it_runs_the_job_in_the_foreground_without_a_worker(entries, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

    run("--function", FUNCTION, "--yes")

    invalidation = Invalidation.objects.get()
    assert (invalidation.status, invalidation.removed) == ("done", 3)
    assert not DBTaskResult.objects.exists()  # nothing was queued for a worker
