"""manage.py prune: delete call rows and invalidated or replaced entries older than
the retention (EXTRACTOR_CALL_RETENTION_DAYS); safe while the site runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from rich.console import Console
from rich.progress import Progress

from extractor.services import retention as service


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type, so a bad value is refused with the option's name."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {bound}")
        return value

    return parse


class Command(BaseCommand):
    help = (
        "Delete call rows and invalidated or replaced entries older than the retention "
        "(EXTRACTOR_CALL_RETENTION_DAYS), in short chunks. The counters are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=_whole_number(0),
            metavar="N",
            help="keep this many days instead of EXTRACTOR_CALL_RETENTION_DAYS; 0 keeps everything",
        )
        parser.add_argument(
            "--chunk-size",
            type=_whole_number(1, service.MAX_CHUNK),
            default=service.CHUNK,
            metavar="ROWS",
            help=f"rows deleted per transaction (default {service.CHUNK})",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go; delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        try:
            days: int = service.retention_days() if options["days"] is None else options["days"]
            service.retention_cutoff(days=days)
        except (ImproperlyConfigured, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if days == 0:
            self._say("Retention is off (0 days): nothing is pruned.")
            return
        if options["dry_run"]:
            counted = service.retention_count(days=days)
            self._say(
                f"Would remove {_describe(counted)} {_age(days, counted)}. "
                "Nothing was deleted (dry run)."
            )
            return
        pruned = self._with_progress(days, options["chunk_size"])
        if pruned.calls + pruned.entries == 0:
            self._say(f"Nothing to prune: no call rows or dead entries {_age(days, pruned)}.")
            return
        self._say(self.style.SUCCESS(f"Removed {_describe(pruned)} {_age(days, pruned)}."))

    def _with_progress(self, days: int, chunk_size: int) -> service.Pruned:
        if self.verbosity < 1:
            return service.retention_prune(days=days, chunk_size=chunk_size)
        # The bar goes to stderr, so stdout stays the plain result a script can read.
        console = Console(file=getattr(self.stderr, "_out", sys.stderr))
        with Progress(console=console, transient=self.verbosity < 2) as bar:
            task = bar.add_task("Pruning", total=None)
            return service.retention_prune(
                days=days,
                chunk_size=chunk_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)


def _age(days: int, pruned: service.Pruned) -> str:
    assert pruned.cutoff is not None  # days > 0
    return f"older than {days} days (before {timezone.localtime(pruned.cutoff):%Y-%m-%d %H:%M %Z})"


def _describe(pruned: service.Pruned) -> str:
    calls = _count(pruned.calls, "call row", "call rows")
    entries = _count(
        pruned.entries, "invalidated or replaced entry", "invalidated or replaced entries"
    )
    replays = (
        f" (and {_count(pruned.replays, 'replay', 'replays')} of theirs)" if pruned.replays else ""
    )
    return f"{calls} and {entries}{replays}"


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n:,} {singular if n == 1 else plural}"
