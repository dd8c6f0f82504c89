"""manage.py import_entries: load an export_entries file, warming a backend."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from functools import partial
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import Progress

from extractor.caching.backends import CacheBackend, backend_from_url
from extractor.caching.errors import BackendError, CacheConfigurationError
from extractor.services import transfer as service


class Command(BaseCommand):
    help = (
        "Read a file written by export_entries: write each stored envelope into a backend "
        "(--to, else each function's own) and create its entry row, and the schema version "
        "and function rows it needs, in this database. Entries already live here, and "
        "entries expired since the export, are left out. A bad line is reported with its "
        "number and skipped (--strict: stops there). Streams: memory stays flat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="FILE", help='an export_entries file; "-" for stdin')
        parser.add_argument(
            "--to",
            metavar="URL",
            help="the backend to fill, e.g. redis://host:6379/0 (default: each function's "
            "backend, as its code configures it here)",
        )
        parser.add_argument("--strict", action="store_true", help="stop at the first bad line")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="read and check the whole file, report what would be imported; write nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        path: str = options["path"]
        to = self._backend(options["to"]) if options["to"] else None
        with ExitStack() as stack:
            if path == "-":
                stream: IO[bytes] = sys.stdin.buffer
                size = None
            else:
                try:
                    stream = stack.enter_context(open(path, "rb"))
                    size = os.fstat(stream.fileno()).st_size
                except OSError as exc:
                    raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
            if to is not None:
                stack.callback(to.close)
            try:
                imported = self._with_progress(stream, size, to, options)
            except service.TransferError as exc:
                raise CommandError(f"{path}: {exc}. Nothing was imported.") from None
            except service.BadLine as exc:
                done = "checked" if options["dry_run"] else "imported"
                raise CommandError(f"{path}: {exc}. The lines before it were {done}.") from None
            except BackendError as exc:
                raise CommandError(
                    f"The backend failed: {exc}. Entries before it were imported; running "
                    "the import again skips them."
                ) from None
        self._say(self._describe(imported, options["dry_run"]))

    def _backend(self, url: str) -> CacheBackend:
        try:
            return backend_from_url(url)
        except CacheConfigurationError as exc:
            raise CommandError(str(exc)) from None

    def _with_progress(
        self, stream: IO[bytes], size: int | None, to: CacheBackend | None, options: dict[str, Any]
    ) -> service.Imported:
        def bad_line(number: int, why: str) -> None:
            self.stderr.write(f"line {number}: {why}; skipped")

        run = partial(
            service.import_entries,
            stream,
            to=to,
            strict=options["strict"],
            dry_run=options["dry_run"],
            on_bad_line=bad_line,
            total_bytes=size,
        )
        if self.verbosity < 1:
            return run()
        # The bar goes to stderr, so stdout stays the plain result a script can read.
        console = Console(file=getattr(self.stderr, "_out", sys.stderr))
        with Progress(console=console, transient=self.verbosity < 2) as bar:
            task = bar.add_task("Importing", total=size)
            return run(progress=lambda done, total: bar.update(task, completed=done, total=total))

    def _describe(self, imported: service.Imported, dry_run: bool) -> str:
        verb = "Would import" if dry_run else "Imported"
        parts = [f"{verb} {imported.entries:,} entries"]
        if imported.schema_versions or imported.functions:
            parts.append(
                f"with {imported.schema_versions:,} new schema versions and "
                f"{imported.functions:,} new functions"
            )
        skipped = []
        if imported.already:
            skipped.append(f"{imported.already:,} already live here")
        if imported.expired:
            skipped.append(f"{imported.expired:,} expired since the export")
        if imported.bad_lines:
            skipped.append(f"{imported.bad_lines:,} bad lines")
        text = " ".join(parts)
        if skipped:
            text += "; skipped " + ", ".join(skipped)
        return text + (" (dry run: nothing was written)." if dry_run else ".")

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)
