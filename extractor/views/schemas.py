"""Schemas: every response model, its versions and entries, and what changed between two."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import SchemaCompareForm
from extractor.http import HtmxHttpRequest, render_page_or_fragment, wants_fragment
from extractor.models import SchemaVersion
from extractor.schemas import BUILT_IN, dotted_path, registered_schemas
from extractor.selectors.diff import SchemaChange, schema_diff
from extractor.selectors.schemas import schema_summaries

COMPARE_PARAMS = ("name", "a", "b")


@dataclass
class SchemaCard:
    name: str  # dotted path, as SchemaVersion.name
    versions: list[SchemaVersion]
    registered: bool
    # A built-in schema that EXTRACTOR_SCHEMAS replaced on the Extract page: by what.
    replaced_by: str = ""
    # The versions the compare form starts on: the comparison asked for, else the last two.
    compare_a: int | None = None
    compare_b: int | None = None

    @property
    def anchor(self) -> str:
        return anchor_for(self.name)


@dataclass
class Comparison:
    name: str
    errors: list[str] = field(default_factory=list)
    old: SchemaVersion | None = None
    new: SchemaVersion | None = None
    changes: list[SchemaChange] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return anchor_for(self.name)


def anchor_for(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


@require_GET
@staff_required
def schema_list(request: HtmxHttpRequest) -> HttpResponse:
    comparison = None
    if any(param in request.GET for param in COMPARE_PARAMS):
        comparison = compare(SchemaCompareForm(request.GET))
    if wants_fragment(request):
        # The compare form swaps only its own diff region, which needs no cards.
        return render_page_or_fragment(
            request, "extractor/schemas.html", "diff", {"comparison": comparison}
        )
    cards = schema_cards(comparison)
    context = {
        "cards": cards,
        "comparison": comparison,
        # An error that belongs to no schema on the page is shown at the top instead.
        "orphan_comparison": comparison
        if comparison and comparison.name not in {card.name for card in cards}
        else None,
    }
    status = 400 if comparison and comparison.errors else 200
    return render_page_or_fragment(request, "extractor/schemas.html", "diff", context, status)


def compare(form: SchemaCompareForm) -> Comparison:
    if not form.is_valid():
        errors = [str(error) for errors in form.errors.values() for error in errors]
        return Comparison(name=form.data.get("name", ""), errors=errors)
    old, new = form.cleaned_data["old"], form.cleaned_data["new"]
    return Comparison(
        name=old.name, old=old, new=new, changes=schema_diff(old.json_schema, new.json_schema)
    )


def schema_cards(comparison: Comparison | None) -> list[SchemaCard]:
    """Schemas seen in the cache, then registered ones no call has used yet."""
    registered = {short: dotted_path(model) for short, model in registered_schemas().items()}
    replaced = {
        dotted_path(model): registered[model.__name__]
        for model in BUILT_IN
        if registered.get(model.__name__) != dotted_path(model)
    }
    offered = set(registered.values())
    cards = [
        SchemaCard(
            summary.name,
            summary.versions,
            summary.name in offered,
            replaced_by=replaced.get(summary.name, ""),
        )
        for summary in schema_summaries()
    ]
    seen = {card.name for card in cards}
    cards += [SchemaCard(name, [], True) for name in sorted(offered - seen)]
    for card in cards:
        if comparison and comparison.old and comparison.new and comparison.name == card.name:
            card.compare_a, card.compare_b = comparison.old.pk, comparison.new.pk
        elif len(card.versions) >= 2:
            card.compare_a, card.compare_b = card.versions[-2].pk, card.versions[-1].pk
    return cards
