"""manage.py stats: the overview's figures as terminal tables."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from rich.console import Console
from rich.table import Table

from extractor.management.commands.prune import _whole_number
from extractor.selectors.stats import Overview, Savings, overview

DEFAULT_DAYS = 7


class Command(BaseCommand):
    help = (
        "Print the hit rate, hits, misses and errors, and what the cache saved (tokens, "
        "money at EXTRACTOR_PRICES, LLM time), in total and for the busiest functions and "
        "schemas. Read from the counters, as the overview page is: cheap at any size."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        window = parser.add_mutually_exclusive_group()
        window.add_argument(
            "--days",
            type=_whole_number(1),
            default=DEFAULT_DAYS,
            metavar="N",
            help=f"the last N days (default {DEFAULT_DAYS})",
        )
        window.add_argument("--all", action="store_true", help="every call ever counted")
        parser.add_argument(
            "--top",
            type=_whole_number(1),
            default=10,
            metavar="N",
            help="functions and schemas listed, busiest first (default 10)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        figures = overview(days=None if options["all"] else options["days"])
        out = getattr(self.stdout, "_out", sys.stdout)
        # A terminal gets its own width; a pipe or a file gets one wide enough for the columns.
        console = Console(file=out, width=None if out.isatty() else 120)
        window = "all time" if figures.days is None else f"the last {figures.days} days"
        if not figures.total.calls:
            console.print(f"No calls counted in {window}.")
            return
        console.print(_summary(figures, window))
        top = options["top"]
        console.print(_breakdown("Functions", figures.by_function[:top]))
        console.print(_breakdown("Schemas", figures.by_schema[:top]))
        if figures.unpriced_models:
            console.print(
                "Not priced (add them to EXTRACTOR_PRICES): " + ", ".join(figures.unpriced_models)
            )


def _summary(figures: Overview, window: str) -> Table:
    total = figures.total
    table = Table(title=f"Cache, {window}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("Calls", f"{total.calls:,}")
    table.add_row("Hit rate", _rate(total))
    table.add_row("Hits / misses / errors", f"{total.hits:,} / {total.misses:,} / {total.errors:,}")
    if total.coalesced:
        table.add_row("Hits that waited for another caller's call", f"{total.coalesced:,}")
    table.add_row("Tokens saved", f"{total.tokens_saved:,}")
    table.add_row("Cost saved", _money(total.cost_saved))
    table.add_row("LLM time saved", _duration(total.latency_saved_ms))
    table.add_row("Saved by provider prompt caching", _money(total.provider_cost_saved))
    if total.hits_without_entry:
        table.add_row("Hits with no entry row (savings unknown)", f"{total.hits_without_entry:,}")
    return table


def _breakdown(title: str, rows: list[Savings]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Name")
    for name in ("Calls", "Hit rate", "Hits", "Misses", "Errors", "Tokens saved", "Cost saved"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            row.label,
            f"{row.calls:,}",
            _rate(row),
            f"{row.hits:,}",
            f"{row.misses:,}",
            f"{row.errors:,}",
            f"{row.tokens_saved:,}",
            _money(row.cost_saved),
        )
    return table


def _rate(savings: Savings) -> str:
    rate = savings.hit_rate
    return "—" if rate is None else f"{rate:.1%}"


def _money(usd: float) -> str:
    # Cents hide what a small deployment saves: a thousand hits can be $0.004.
    return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:.4f}"


def _duration(ms: float) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"
