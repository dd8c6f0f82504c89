"""manage.py reconcile: entry rows against the keys their backends hold."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import Progress

from extractor.caching.errors import BackendError
from extractor.services import reconcile as service


class Command(BaseCommand):
    help = (
        "Compare the live entry rows with the keys their backends hold: rows whose value "
        "is gone (evicted, lost) and entry keys with no row (values the pages can neither "
        "show nor invalidate). Reports exact counts; --fix-rows marks the first "
        "invalidated, --fix-keys deletes the second (values stored in the last "
        f"{service.ORPHAN_GRACE / 60:g} minutes are left alone: their rows may be on the "
        "way). Safe while the site runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--function",
            metavar="NAME",
            help='only this function\'s rows ("module:qualname"); keys carry no function '
            "name, so the keys checked are those of its whole backend",
        )
        parser.add_argument(
            "--fix-rows",
            action="store_true",
            help="mark live rows whose value is gone as invalidated",
        )
        parser.add_argument(
            "--fix-keys", action="store_true", help="delete entry keys that have no live row"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what the fixes would do; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        dry_run: bool = options["dry_run"]
        fix_rows = options["fix_rows"] and not dry_run
        fix_keys = options["fix_keys"] and not dry_run
        try:
            result = self._with_progress(options["function"], fix_rows, fix_keys)
        except BackendError as exc:
            raise CommandError(f"The backend failed: {exc}. Nothing more was changed.") from None
        except NotImplementedError as exc:  # a custom backend without scan_keys()
            raise CommandError(f"{exc}, so its keys cannot be reconciled.") from None
        for function, why in result.unknown.items():
            self.stderr.write(f"Skipped the rows of {function}: {why}")
        if options["function"] and options["function"] in result.unknown:
            raise CommandError(f"Cannot reconcile {options['function']}.")
        for report in result.backends:
            self._say(self._describe(report, options, dry_run))

    def _with_progress(
        self, function: str | None, fix_rows: bool, fix_keys: bool
    ) -> service.Reconciliation:
        if self.verbosity < 1:
            return service.reconcile(function=function, fix_rows=fix_rows, fix_keys=fix_keys)
        # The bar goes to stderr, so stdout stays the plain result a script can read.
        console = Console(file=getattr(self.stderr, "_out", sys.stderr))
        tasks: dict[str, Any] = {}
        with Progress(console=console, transient=self.verbosity < 2) as bar:

            def progress(what: str, done: int, total: int | None) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(what, total=total)
                bar.update(tasks[what], completed=done, total=total)

            return service.reconcile(
                function=function, fix_rows=fix_rows, fix_keys=fix_keys, progress=progress
            )

    def _describe(
        self, report: service.BackendReport, options: dict[str, Any], dry_run: bool
    ) -> str:
        rows = f"{report.label}: {_count(report.rows_checked, 'live row')} checked, "
        rows += f"{report.rows_vanished:,} without a value"
        rows += _fate(
            report.rows_vanished,
            report.rows_fixed,
            asked=options["fix_rows"],
            dry_run=dry_run,
            done="marked invalidated",
            flag="--fix-rows",
        )
        keys = f"{_count(report.keys_checked, 'entry key')} checked, "
        keys += f"{report.keys_orphaned:,} without a row"
        keys += _fate(
            report.keys_orphaned,
            report.keys_fixed,
            asked=options["fix_keys"],
            dry_run=dry_run,
            done="deleted",
            flag="--fix-keys",
        )
        young = (
            f"; {_count(report.keys_young, 'newer key')} without a row yet left alone"
            if report.keys_young
            else ""
        )
        return f"{rows}; {keys}{young}."

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)


def _fate(found: int, fixed: int, *, asked: bool, dry_run: bool, done: str, flag: str) -> str:
    if not found:
        return ""
    if asked and dry_run:
        return f" (would be {done}; dry run)"
    if asked:
        return f" ({fixed:,} {done})"
    return f" ({flag} to fix)"


def _count(n: int, singular: str) -> str:
    return f"{n:,} {singular if n == 1 else singular + 's'}"
