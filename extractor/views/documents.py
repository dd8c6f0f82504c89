"""Documents: each context document's calls, what provider prompt caching and the
response cache each saved on them, its questions and their entries."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from extractor.auth import staff_required
from extractor.http import HtmxHttpRequest, render_page_or_fragment
from extractor.selectors import prompt_caching as selectors
from extractor.selectors.keyset import BadCursor, Cursor

DOCUMENTS_PER_PAGE = 50
ENTRIES_PER_PAGE = 50
CALLS_PER_PAGE = 50
QUESTIONS_SHOWN = 100


@require_GET
@staff_required
def document_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        cursor = selectors.document_cursor(request.GET)
        bad_cursor = False
    except BadCursor:
        cursor, bad_cursor = None, True
    page = selectors.document_page(cursor, DOCUMENTS_PER_PAGE)
    return render_page_or_fragment(
        request,
        "extractor/documents.html",
        "results",
        {
            "page": page,
            "documents": selectors.document_figures(page.object_list),
            "bad_cursor": bad_cursor,
        },
    )


@require_GET
@staff_required
def document_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    document = get_object_or_404(selectors.document_detail(pk))
    bad_cursor = False
    entry_cursor: Cursor | None = None
    call_cursor: Cursor | None = None
    try:
        entry_cursor = selectors.entry_cursor(request.GET)
    except BadCursor:
        bad_cursor = True
    try:
        call_cursor = selectors.call_cursor(request.GET)
    except BadCursor:
        bad_cursor = True
    (figures,) = selectors.document_figures([document])
    questions = selectors.document_questions(document, QUESTIONS_SHOWN + 1)
    return render_page_or_fragment(
        request,
        "extractor/document_detail.html",
        "lists",
        {
            "document": document,
            "figures": figures,
            "questions": questions[:QUESTIONS_SHOWN],
            "question_count": selectors.document_question_count(document)
            if len(questions) > QUESTIONS_SHOWN
            else len(questions),
            "entries": selectors.document_entries(document, entry_cursor, ENTRIES_PER_PAGE),
            "calls": selectors.document_calls(document, call_cursor, CALLS_PER_PAGE),
            "bad_cursor": bad_cursor,
        },
    )
