"""manage.py prune: says what it removed, counts on a dry run, refuses bad arguments."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from extractor.models import Call, Entry
from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("prune", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def old_rows() -> None:
    long_ago = timezone.now() - timedelta(days=40)
    dead = EntryFactory(status=Entry.Status.REPLACED, created_at=long_ago)
    CallFactory.create_batch(2, entry=dead, created_at=long_ago)
    CallFactory(entry=dead)  # today's


def test_it_removes_old_rows_and_says_what_it_removed(old_rows):
    out, _ = run("--chunk-size", "1")

    assert out.startswith(
        "Removed 2 call rows and 1 invalidated or replaced entry older than 30 days (before "
    )
    assert Call.objects.count() == 1
    assert not Entry.objects.exists()


def test_dry_run_counts_and_deletes_nothing(old_rows):
    out, _ = run("--dry-run", "--days", "7")

    assert out.startswith(
        "Would remove 2 call rows and 1 invalidated or replaced entry older than 7 days"
    )
    assert out.rstrip().endswith("Nothing was deleted (dry run).")
    assert (Call.objects.count(), Entry.objects.count()) == (3, 1)


def test_zero_days_keeps_everything(old_rows):
    out, _ = run("--days", "0")

    assert out == "Retention is off (0 days): nothing is pruned.\n"
    assert Call.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "-1"], "argument --days: -1 is out of range; use 0 or more"),
        (["--days", "ten"], "argument --days: 'ten' is not a whole number"),
        (["--chunk-size", "0"], "argument --chunk-size: 0 is out of range; use between 1 and"),
        (["--days", "999999999"], "999999999 days reaches back before the year 1; use fewer"),
    ],
)
def test_a_bad_argument_is_a_clear_error(old_rows, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)

    assert Call.objects.count() == 3
