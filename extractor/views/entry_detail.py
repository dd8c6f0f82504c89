"""One entry: its input, output, key components, calls and history; replay or invalidate it."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.models import Call, Entry
from extractor.selectors import entries as selectors
from extractor.selectors.prompt_caching import document_named
from extractor.services.replay import ReplayImpossible, replay_target

# An entry can have many thousands of calls (one per hit): a page at a time.
CALLS_PER_PAGE = 100
HISTORY_SHOWN = 50


@require_GET
@staff_required
def entry_detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(selectors.entry_detail(pk))
    page = Paginator(selectors.entry_calls(entry), CALLS_PER_PAGE).get_page(request.GET.get("page"))
    calls = list(page.object_list)
    replaced = entry.status == Entry.Status.REPLACED
    replaced_by = selectors.entry_replacement(entry) if replaced else None
    history = list(selectors.with_staleness(selectors.entry_history(entry))[: HISTORY_SHOWN + 1])
    return render(
        request,
        "extractor/entry_detail.html",
        {
            "entry": entry,
            "calls": calls,
            "page": page,
            "created_by": _creating_miss(entry, calls),
            "history": history[:HISTORY_SHOWN],
            "more_history": len(history) > HISTORY_SHOWN,
            "function_now": selectors.entry_function_now(entry),
            "replaced_by": replaced_by,
            "replay_impossible": _why_not_replayable(entry),
            "replays": entry.replays.select_related("requested_by", "replacement")[:10],
            "document": document_named(entry.document_sha),
        },
    )


def _creating_miss(entry: Entry, calls: list[Call]) -> Call | None:
    """The miss that computed and stored this value, when it is among the calls shown."""
    misses = [c for c in calls if c.entry_id == entry.pk and c.outcome == Call.Outcome.MISS]
    return misses[-1] if misses else None


def _why_not_replayable(entry: Entry) -> str:
    try:
        replay_target(entry)
    except ReplayImpossible as exc:
        return str(exc)
    return ""
