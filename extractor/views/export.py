"""Export: the Entries or Calls selection as CSV or JSON Lines, streamed batch by batch.

The query string is the list page's: the same form reads it, so an export is
exactly what the page lists (every page of it: cursor parameters are ignored).
A filter the form refuses is a 400 rather than an export of more than was asked.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.forms import CallFilterForm, EntryFilterForm
from extractor.selectors import calls as call_selectors
from extractor.selectors import export as selectors

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}

# A spreadsheet runs a cell that starts with one of these as a formula (a cached
# output or an error text could say "=HYPERLINK(...)"): such a text cell gets a
# leading apostrophe, which spreadsheets read as "this is text". Tab and carriage
# return are OWASP's additions to = + - @.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@require_GET
@staff_required
def entry_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    form = EntryFilterForm(request.GET)
    if not form.is_valid():
        return _bad_filters(form, "Entries")
    return _streamed(selectors.entry_export(form.filters()), fmt)


@require_GET
@staff_required
def call_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    form = CallFilterForm(
        request.GET,
        functions=call_selectors.function_names(),
        models=call_selectors.model_names(),
    )
    if not form.is_valid():
        return _bad_filters(form, "Calls")
    return _streamed(selectors.call_export(form.filters()), fmt)


def _bad_filters(form: forms.Form, page: str) -> HttpResponse:
    problems = [
        f"{form[name].label}: {error}" if name in form.fields else str(error)
        for name, errors in form.errors.items()
        for error in errors
    ]
    message = (
        "Nothing was exported: some filters were not understood.\n"
        + "".join(f"- {problem}\n" for problem in problems)
        + f"Correct them on the {page} page and export again.\n"
    )
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _streamed(export: selectors.Export, fmt: str) -> StreamingHttpResponse:
    lines = _csv(export) if fmt == "csv" else _jsonl(export)
    filename = f"{export.name}-{timezone.now():%Y%m%d-%H%M}.{fmt}"
    return StreamingHttpResponse(
        lines,
        content_type=CONTENT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class _Echo:
    """A file whose write() hands the line back: csv.writer formats, the response sends."""

    def write(self, value: str) -> str:
        return value


def _csv(export: selectors.Export) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(export.columns)
    json_at = [column in export.json_columns for column in export.columns]
    # One chunk per batch: a write per row would be a million writes to the socket.
    for batch in export.batches:
        yield "".join(
            writer.writerow(
                [_cell(value, is_json) for value, is_json in zip(row, json_at, strict=True)]
            )
            for row in batch
        )


def _cell(value: Any, is_json: bool) -> Any:
    if value is None:
        return ""
    if is_json:
        value = _json(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _jsonl(export: selectors.Export) -> Iterator[str]:
    for batch in export.batches:
        yield "".join(_json(dict(zip(export.columns, row, strict=True))) + "\n" for row in batch)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
