"""manage.py reconcile: live rows without a value, entry keys without a row."""

from __future__ import annotations

import io
import time

import orjson
import pytest
from django.core.management import CommandError, call_command

from extractor.caching.defaults import default_backend
from extractor.models import Entry
from tests.factories import EntryFactory, _hex

pytestmark = pytest.mark.django_db

HOUR = 3600.0


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def envelope(age: float) -> str:
    return orjson.dumps({"format": 2, "created_at": time.time() - age}).decode()


@pytest.fixture(params=["memory", "disk", "redis"])
def drifted(request, settings):
    """Two rows with their values, one whose value is gone; a key stored an hour ago
    with no row, one stored a second ago, and a key that is not an entry's."""
    if request.param == "memory":
        settings.EXTRACTOR_CACHE_URL = "memory://?maxsize=100"
    elif request.param == "redis":
        settings.EXTRACTOR_CACHE_URL = request.getfixturevalue("redis_cache_url")
    backend = default_backend()
    kept = EntryFactory.create_batch(2)
    for entry in kept:
        backend.set(entry.key, envelope(HOUR))
    vanished = EntryFactory()
    orphan, young = _hex("orphan"), _hex("young")
    backend.set(orphan, envelope(HOUR))
    backend.set(young, envelope(1))
    backend.set("flight:lock:" + _hex("x"), "token")
    yield {"kept": kept, "vanished": vanished, "orphan": orphan, "young": young}
    backend.clear()


def test_it_reports_exact_counts_and_changes_nothing(drifted):
    out = run()

    assert "3 live rows checked, 1 without a value (--fix-rows to fix)" in out
    assert "4 entry keys checked, 1 without a row (--fix-keys to fix)" in out
    assert "1 newer key without a row yet left alone" in out
    assert Entry.objects.get(pk=drifted["vanished"].pk).status == Entry.Status.LIVE
    assert default_backend().get(drifted["orphan"]) is not None


def test_a_dry_run_says_what_the_fixes_would_do(drifted):
    out = run("--fix-rows", "--fix-keys", "--dry-run")

    assert "1 without a value (would be marked invalidated; dry run)" in out
    assert "1 without a row (would be deleted; dry run)" in out
    assert Entry.objects.get(pk=drifted["vanished"].pk).status == Entry.Status.LIVE
    assert default_backend().get(drifted["orphan"]) is not None


def test_the_fixes_mark_the_rows_and_delete_only_old_orphaned_entry_keys(drifted):
    out = run("--fix-rows", "--fix-keys")

    assert "(1 marked invalidated)" in out
    assert "(1 deleted)" in out
    assert Entry.objects.get(pk=drifted["vanished"].pk).status == Entry.Status.INVALIDATED
    assert set(Entry.objects.filter(status="live").values_list("pk", flat=True)) == {
        entry.pk for entry in drifted["kept"]
    }
    backend = default_backend()
    assert backend.get(drifted["orphan"]) is None
    assert backend.get(drifted["young"]) is not None
    assert backend.get("flight:lock:" + _hex("x")) is not None
    assert all(backend.get(entry.key) is not None for entry in drifted["kept"])


def test_a_function_whose_backend_cannot_be_told_is_refused():
    EntryFactory(function="tests.nowhere:extract")

    with pytest.raises(CommandError, match=r"Cannot reconcile tests\.nowhere:extract"):
        run("--function", "tests.nowhere:extract")
