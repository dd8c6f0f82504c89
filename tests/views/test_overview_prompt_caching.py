"""The overview's provider prompt-caching tables, per model and per document, apart from
the response cache's."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from extractor.models import Call
from tests.factories import CallFactory, DocumentFactory, EntryFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:overview")
PRICES = {"model-a": (1.0, 0.1, 1.25, 2.0, 2.0)}  # input, cached, 5m write, 1h write, output


def rows(html: str, kind: str) -> list[list[str]]:
    table = html.split(f'data-testid="prompt-{kind}-table"', 1)[1].split("</table>", 1)[0]
    return [
        [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]
        for cells in (
            re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
            for row in re.findall(rf'<tr data-testid="prompt-{kind}-row">(.*?)</tr>', table, re.S)
        )
    ]


def llm_call(document, *, read=0, write=0, write_1h=0):
    entry = EntryFactory(
        document_sha=document.sha256 if document else "",
        llm_model="model-a",
        prompt_tokens=100 + read + write,
        cached_prompt_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        completion_tokens=50,
    )
    return CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        document_sha=entry.document_sha,
        prompt_tokens=entry.prompt_tokens,
        cached_prompt_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        completion_tokens=50,
    )


def test_prompt_caching_has_its_own_tables_per_model_and_per_document(staff_client, settings):
    settings.EXTRACTOR_PRICES = PRICES
    document = DocumentFactory(name="lease-2026.txt")
    llm_call(document, write=2000, write_1h=2000)
    second = llm_call(document, read=2000)
    llm_call(document, read=2000)
    CallFactory.create_batch(3, entry=second.entry, document_sha=document.sha256)  # hits
    llm_call(None)  # no document, no prompt caching

    html = staff_client.get(URL).content.decode()

    assert "Provider prompt caching by model" in html
    assert "Provider prompt caching by document" in html
    # Reads 4,000 x 0.9 minus the 1-hour write premium 2,000 x (2 - 1), per million.
    # The hits are not LLM calls: neither their calls nor their entries' tokens count.
    # Read share: 4,000 of 6,400 input tokens (6,300 with the document).
    assert rows(html, "model") == [
        ["model-a", "4", "2,000 (2,000 for 1 h)", "4,000", "62.5%", "$0.0016"]
    ]
    assert rows(html, "document") == [
        ["lease-2026.txt", "3", "2,000 (2,000 for 1 h)", "4,000", "63.5%", "$0.0016"]
    ]
    link = reverse("extractor:document", args=[document.pk])
    assert f'<a href="{link}">lease-2026.txt</a>' in html
    # The response cache's own tables still count the hits, under their own names.
    assert 'data-testid="model-table"' in html


def test_no_document_in_the_window_says_how_to_send_one(staff_client):
    CallFactory()

    html = staff_client.get(URL).content.decode()

    assert 'data-testid="no-documents"' in html
    assert "Context document" in html


def test_an_unpriced_model_has_no_saving_rather_than_zero(staff_client, settings):
    settings.EXTRACTOR_PRICES = {}
    llm_call(DocumentFactory(), read=500)

    html = staff_client.get(URL).content.decode()

    assert rows(html, "model")[0][-1] == "—"
