"""manage.py invalidate: drop cached values of an entry, a schema version, a function,
a model, or every stale entry. Runs the background job's steps in the foreground, with a
progress bar (no worker needed)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import Progress

from extractor.models import Entry, Invalidation
from extractor.selectors.entries import InvalidationScope
from extractor.services import invalidation as service

Run = Callable[..., Invalidation]  # called with progress=

SCOPES = {
    "entry": Invalidation.Action.ENTRY,
    "schema_version": Invalidation.Action.SCHEMA_VERSION,
    "function": Invalidation.Action.FUNCTION,
    "model": Invalidation.Action.MODEL,
}


class Command(BaseCommand):
    help = "Delete cached values from the backend and mark their entries invalidated."

    def add_arguments(self, parser: CommandParser) -> None:
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--entry", type=int, metavar="PK")
        scope.add_argument("--schema-version", type=int, metavar="PK")
        scope.add_argument("--function", metavar="NAME", help='"module:qualname"')
        scope.add_argument("--model", metavar="NAME", help="an LLM model name")
        scope.add_argument("--stale", action="store_true", help="every stale entry")
        scope.add_argument(
            "--retry",
            type=int,
            metavar="INVALIDATION_PK",
            help="finish an invalidation that failed or was cut off halfway",
        )
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        run: Run
        if options["retry"] is not None:
            earlier = self._retryable(options["retry"])
            count = earlier.entries.filter(status=Entry.Status.INVALIDATING).count()
            what = f"the {count} entries invalidation #{earlier.pk} left marked"
            run = partial(service.invalidation_retry, invalidation=earlier)
        else:
            scope = self._scope(options)
            count = service.invalidation_count(scope)
            if count == 0:
                self._say(
                    f"Nothing to invalidate: no entries of {scope.describe()} still hold a value."
                )
                return
            what = f"{count} entries of {scope.describe()}"
            run = partial(service.invalidation_run, scope=scope, by=None)
        self._confirm(what, options["yes"])
        invalidation = self._with_progress(count, run)
        if invalidation.status in (Invalidation.Status.QUEUED, Invalidation.Status.RUNNING):
            raise CommandError(
                f"Invalidation #{invalidation.pk} was taken by another run first; "
                "see its page for its progress."
            )
        if invalidation.status != Invalidation.Status.DONE:
            raise CommandError(
                f"Invalidation #{invalidation.pk} failed after {invalidation.removed} of "
                f"{invalidation.matched}: {invalidation.error}. The rest stay marked; finish with "
                f"`manage.py invalidate --retry {invalidation.pk}`."
            )
        self._say(
            self.style.SUCCESS(
                f"Invalidated {invalidation.removed} entries (invalidation #{invalidation.pk})."
            )
        )

    def _scope(self, options: dict[str, Any]) -> InvalidationScope:
        if options["stale"]:
            return InvalidationScope(Invalidation.Action.STALE)
        option, action = next((o, a) for o, a in SCOPES.items() if options[o] is not None)
        return InvalidationScope(action, str(options[option]))

    def _retryable(self, pk: int) -> Invalidation:
        invalidation = Invalidation.objects.filter(pk=pk).first()
        if invalidation is None:
            raise CommandError(f"There is no invalidation #{pk}.")
        if not service.invalidation_retryable(invalidation):
            raise CommandError(
                f"Invalidation #{pk} is {invalidation.status}; "
                "only a failed or stalled one can be retried."
            )
        return invalidation

    def _confirm(self, what: str, yes: bool) -> None:
        if yes:
            self._say(f"Invalidating {what}.")
            return
        try:
            answer = input(f"Invalidate {what}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("Cancelled; nothing was invalidated.")

    def _with_progress(self, total: int, run: Run) -> Invalidation:
        if self.verbosity < 1:
            return run(progress=None)
        # The bar goes to stderr, so stdout stays the plain result a script can read.
        console = Console(file=getattr(self.stderr, "_out", sys.stderr))
        with Progress(console=console, transient=self.verbosity < 2) as bar:
            task = bar.add_task("Deleting from the backend", total=total)
            # The job marks the rows itself: its exact count replaces the one asked about.
            return run(
                progress=lambda removed, matched: bar.update(task, completed=removed, total=matched)
            )

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)
