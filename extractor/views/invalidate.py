"""Invalidate: confirm how many entries, drop their values, keep the history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from extractor.auth import staff_required
from extractor.forms import InvalidateForm, parse_id
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.models import Entry, Invalidation, SchemaVersion
from extractor.selectors.display_names import display_names
from extractor.selectors.entries import describe_selection, selection_filters
from extractor.selectors.invalidation_targets import invalidation_choosers
from extractor.services.invalidation import (
    invalidation_request,
    invalidation_requeue,
    invalidation_retryable,
    invalidation_split,
    invalidation_tally,
    invalidation_waiting,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class InvalidationRow:
    invalidation: Invalidation
    target_label: str  # "UserDetail v2 (#7)" for a schema version, a function's display name...
    target_url: str = ""  # the entry's page, for a one-entry invalidation


@require_http_methods(["GET", "POST"])
@staff_required
def invalidate(request: HtmxHttpRequest) -> HttpResponse:
    """GET: say how many entries (live, stale) an action would touch; changes nothing.
    POST: queue the job that does it, and show its progress."""
    data = request.POST if request.method == "POST" else request.GET
    if request.method == "GET" and "action" not in data and "target" not in data:
        # No scope asked for yet: offer the choosers, not an error.
        return render(
            request, "extractor/invalidate_confirm.html", chooser_context(InvalidateForm())
        )
    form = InvalidateForm(data)
    if not form.is_valid():
        return render(
            request, "extractor/invalidate_confirm.html", chooser_context(form), status=400
        )
    scope = form.scope()
    if request.method == "POST":
        invalidation = invalidation_request(scope=scope, by=request.user)  # type: ignore[arg-type]
        say_outcome(request, invalidation, f"of {scope.describe()}")
        url = reverse("extractor:invalidation", args=[invalidation.pk])
        # An htmx POST (the button showing progress) is sent on by the browser itself.
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    count = invalidation_tally(scope)
    context = {
        "form": form,
        "scope": scope,
        "description": scope.describe(),
        "count": count,
        "split": invalidation_split(scope, count),
        "selection": describe_selection(selection_filters(scope.target))
        if scope.action == Invalidation.Action.SELECTION
        else "",
    }
    return render(request, "extractor/invalidate_confirm.html", context)


@require_GET
@staff_required
def invalidation_list(request: HtmxHttpRequest) -> HttpResponse:
    invalidations = Invalidation.objects.select_related("requested_by")
    page = Paginator(invalidations, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page_or_fragment(
        request,
        "extractor/invalidation_list.html",
        "rows",
        {"page": page, "rows": with_target_labels(page)},
    )


@require_GET
@staff_required
def invalidation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The invalidation, and while its job is under way its progress: htmx polls the
    `progress` fragment every second until it is done or failed."""
    invalidation = get_object_or_404(Invalidation.objects.select_related("requested_by"), pk=pk)
    retryable = invalidation_retryable(invalidation)
    context = {
        "invalidation": invalidation,
        "row": with_target_labels([invalidation])[0],
        # Counted only where the page offers to finish them: while a job runs, `removed`
        # says how far it got without a count over its rows every second.
        "still_marked": Entry.objects.filter(
            invalidation=invalidation, status=Entry.Status.INVALIDATING
        ).count()
        if retryable
        else 0,
        "retryable": retryable,
        "waiting": invalidation_waiting(invalidation),
    }
    return render_page_or_fragment(
        request, "extractor/invalidation_detail.html", "progress", context
    )


@require_POST
@staff_required
def invalidation_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    invalidation = get_object_or_404(Invalidation, pk=pk)
    if not invalidation_retryable(invalidation):
        messages.info(
            request, "Only a failed or stalled invalidation can be retried; this one is not."
        )
        return redirect("extractor:invalidation", pk=invalidation.pk)
    if invalidation_requeue(invalidation=invalidation):
        invalidation.refresh_from_db()
        say_outcome(request, invalidation, "left marked")
    else:
        messages.info(request, "Another retry took it first; its progress is below.")
    return redirect("extractor:invalidation", pk=invalidation.pk)


def say_outcome(request: HtmxHttpRequest, invalidation: Invalidation, what: str) -> None:
    """The flash message after queuing: with a worker the job has only just been queued
    (the page shows its progress); run inside the request it has already finished."""
    if invalidation.status == Invalidation.Status.DONE:
        messages.success(
            request,
            f"Invalidated {invalidation.removed} {pluralize_entries(invalidation.removed)} {what}.",
        )
    elif invalidation.status == Invalidation.Status.FAILED:
        messages.error(request, "The invalidation stopped; retry it to finish.")
    else:
        messages.info(request, "Queued: a background worker removes the values, below.")


def with_target_labels(invalidations: Iterable[Invalidation]) -> list[InvalidationRow]:
    """Name the targets of a page's invalidations as the pages name them (schema
    versions in one query)."""
    invalidations = list(invalidations)
    version_ids = {
        pk
        for invalidation in invalidations
        if invalidation.action == Invalidation.Action.SCHEMA_VERSION
        and (pk := parse_id(invalidation.target)) is not None
    }
    versions = SchemaVersion.objects.in_bulk(version_ids)
    names = display_names() if invalidations else None
    rows = []
    for invalidation in invalidations:
        label, url = invalidation.target, ""
        pk = parse_id(label)
        if invalidation.action == Invalidation.Action.SCHEMA_VERSION and pk is not None:
            version = versions.get(pk)
            shown = names.schema_version(version) if names and version else None
            label = f"{shown} (#{pk})" if shown else f"#{pk} (deleted)"
        elif invalidation.action == Invalidation.Action.ENTRY and pk is not None:
            label, url = f"entry #{pk}", reverse("extractor:entry", args=[pk])
        elif invalidation.action == Invalidation.Action.FUNCTION and names:
            label = names.function(label)
        elif invalidation.action == Invalidation.Action.SELECTION:
            label = describe_selection(selection_filters(label))
            url = f"{reverse('extractor:entries')}?{invalidation.target}"
        rows.append(InvalidationRow(invalidation, label, url))
    return rows


def chooser_context(form: InvalidateForm) -> dict[str, object]:
    # Lists of what exists to pick from; the free-text form stays for an entry's id or
    # key and for the query-string links the other pages make.
    return {"form": form, "choosers": invalidation_choosers()}


def pluralize_entries(count: int) -> str:
    return "entry" if count == 1 else "entries"
