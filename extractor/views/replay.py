"""Replay: call the LLM again for an entry, compare field by field, keep or replace."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from pydantic import ValidationError

from extractor.auth import acting_user, staff_required
from extractor.caching.events import describe_error
from extractor.http import HtmxHttpRequest
from extractor.llm import redact
from extractor.models import Entry, Replay
from extractor.selectors.diff import ADDED, CHANGED, REMOVED, SAME, output_diff
from extractor.services import replay as replays

logger = logging.getLogger(__name__)


@require_POST
@staff_required
def replay_start(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(Entry, pk=pk)
    try:
        replay = replays.entry_replay(entry=entry, by=acting_user(request))
    except replays.ReplayImpossible as exc:
        messages.error(request, f"The replay did not happen. {exc}")
        return _redirect(request, reverse("extractor:entry", args=[entry.pk]))
    return _redirect(request, reverse("extractor:replay", args=[replay.pk]))


@require_GET
@staff_required
def replay_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    replay = get_object_or_404(
        Replay.objects.select_related(
            "entry", "entry__schema_version", "replacement", "requested_by"
        ),
        pk=pk,
    )
    changes = output_diff(replay.entry.output_in_field_order, replay.output)
    differences = [change for change in changes if change.kind != SAME]
    kinds = {
        kind: sum(1 for change in differences if change.kind == kind)
        for kind in (CHANGED, ADDED, REMOVED)
    }
    return render(
        request,
        "extractor/replay.html",
        {
            "replay": replay,
            "entry": replay.entry,
            "changes": changes,
            "differences": len(differences),
            "kinds": {kind: count for kind, count in kinds.items() if count},
            "can_replace": replay.accepted_at is None and replay.entry.status == Entry.Status.LIVE,
        },
    )


@require_POST
@staff_required
def replay_accept(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    replay = get_object_or_404(Replay.objects.select_related("entry"), pk=pk)
    entry_url = reverse("extractor:entry", args=[replay.entry_id])
    try:
        replacement = replays.replay_accept(replay=replay, by=acting_user(request))
    except (replays.ReplaceRefused, replays.ReplayImpossible) as exc:
        messages.error(request, f"The cached value was not replaced. {exc}")
        return HttpResponseRedirect(entry_url)
    except ValidationError:
        messages.error(
            request,
            "The cached value was not replaced: the fresh output no longer fits the function's "
            "schema (it changed since the replay). Replay the entry again.",
        )
        return HttpResponseRedirect(entry_url)
    except Exception as exc:
        # Most likely the backend refused the write; nothing was changed in that case.
        logger.exception("could not accept replay %s", replay.pk)
        messages.error(
            request, f"The cached value was not replaced: {redact(describe_error(exc))[:300]}"
        )
        return HttpResponseRedirect(entry_url)
    messages.success(
        request,
        "The fresh output is now the cached value; callers with this input get it from the "
        "cache. The old value is kept as history (replaced).",
    )
    return HttpResponseRedirect(reverse("extractor:entry", args=[replacement.pk]))


@require_POST
@staff_required
def replay_keep(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Keep the cached value: nothing is written, the cache and the entry stay as they are.

    A POST like Replace, so both choices are buttons of one kind; there is no
    state to record (Replay has only accepted_at), the message is the receipt.
    """
    replay = get_object_or_404(Replay.objects.select_related("entry"), pk=pk)
    if replay.accepted_at is not None:
        messages.error(
            request,
            "This replay already replaced the cached value; its output is the cached value now.",
        )
        target = replay.replacement_id or replay.entry_id
        return HttpResponseRedirect(reverse("extractor:entry", args=[target]))
    if replay.entry.status != Entry.Status.LIVE:
        messages.error(
            request,
            f"Entry #{replay.entry_id} is {replay.entry.get_status_display().lower()} now: "
            "the cache no longer serves it, so there is no cached value to keep.",
        )
        return HttpResponseRedirect(reverse("extractor:entry", args=[replay.entry_id]))
    messages.success(
        request,
        f"Kept the cached value of entry #{replay.entry_id}; the replay's output was discarded.",
    )
    return HttpResponseRedirect(reverse("extractor:entry", args=[replay.entry_id]))


def _redirect(request: HtmxHttpRequest, url: str) -> HttpResponse:
    # An htmx POST would follow a plain redirect inside the XHR; make the browser go there.
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)
