"""manage.py export_entries: live entries and their stored values as JSON Lines."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import Progress

from extractor.caching.errors import BackendError
from extractor.services import transfer as service


class Command(BaseCommand):
    help = (
        "Write every live, unexpired entry (its row and its stored envelope, byte for "
        "byte) as JSON Lines, for a backup or to warm another backend with import_entries. "
        "Reads each value from its function's backend; rows whose value is gone are "
        "counted and left out. Streams: memory stays flat at any size."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="FILE", help='where to write; "-" for stdout')
        parser.add_argument(
            "--function", metavar="NAME", help='only this function ("module:qualname")'
        )
        parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        path: str = options["path"]
        with ExitStack() as stack:
            if path == "-":
                out: IO[str] = getattr(self.stdout, "_out", sys.stdout)
                self.verbosity = min(self.verbosity, 0)  # the file is stdout: no chatter
            else:
                target = Path(path)
                if target.exists() and not options["force"]:
                    raise CommandError(f"{path} exists; pass --force to overwrite it.")
                try:
                    out = stack.enter_context(target.open("w", encoding="utf-8"))
                except OSError as exc:
                    raise CommandError(f"Cannot write {path}: {exc.strerror}.") from None
            try:
                exported = self._with_progress(out, options["function"])
            except BackendError as exc:
                raise CommandError(f"The backend failed: {exc}. {path} is incomplete.") from None
        for function, why in exported.unknown.items():
            self.stderr.write(f"Left out the entries of {function}: {why}")
        missing = (
            f"; {exported.missing:,} live rows had no value in the backend (see `manage.py "
            "reconcile`)"
            if exported.missing
            else ""
        )
        self._say(self.style.SUCCESS(f"Exported {exported.entries:,} entries to {path}{missing}."))

    def _with_progress(self, out: IO[str], function: str | None) -> service.Exported:
        if self.verbosity < 1:
            return service.export_entries(out, function=function)
        # The bar goes to stderr, so stdout stays the plain result a script can read.
        console = Console(file=getattr(self.stderr, "_out", sys.stderr))
        with Progress(console=console, transient=self.verbosity < 2) as bar:
            task = bar.add_task("Exporting", total=None)
            return service.export_entries(
                out,
                function=function,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)
