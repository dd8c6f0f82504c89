"""The Documents page and a document's page: calls, prompt-cache writes and reads, what each
layer saved, its questions and their entries."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from extractor import extraction
from extractor.models import Call, Document
from extractor.selectors.prompt_caching import document_figures
from extractor.services.documents import document_store
from tests.factories import CallFactory, DocumentFactory, EntryFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:documents")
PRICES = {"model-a": (1.0, 0.1, 1.25, 2.0, 2.0)}


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}">(.*?)</dd>', html, re.S)
    assert match, f"no {name} on the page"
    return text(match.group(1))


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def ask(document, question: str, *, read: int = 0, write: int = 0):
    entry = EntryFactory(
        document_sha=document.sha256,
        llm_model="model-a",
        input_preview=question,
        prompt_tokens=100 + read + write,
        cached_prompt_tokens=read,
        cache_write_tokens=write,
        completion_tokens=50,
    )
    CallFactory(
        entry=entry,
        outcome=Call.Outcome.MISS,
        document_sha=document.sha256,
        input_preview=question,
        prompt_tokens=entry.prompt_tokens,
        cached_prompt_tokens=read,
        cache_write_tokens=write,
        completion_tokens=50,
    )
    return entry


@pytest.fixture
def contract(settings):
    """Three questions on one document: one cache write, two reads, and a hit."""
    settings.EXTRACTOR_PRICES = PRICES
    document = DocumentFactory(name="lease-2026.txt")
    ask(document, "Who is the tenant?", write=2000)
    second = ask(document, "When does it end?", read=2000)
    ask(document, "What is the rent?", read=2000)
    CallFactory(entry=second, document_sha=document.sha256)
    return document


def test_the_list_shows_each_document_with_both_layers_apart(staff_client, contract):
    html = staff_client.get(URL).content.decode()

    (row,) = re.findall(r'<tr data-testid="document-row">(.*?)</tr>', html, re.S)
    cells = [text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
    name, _size, _seen, calls, hits, llm_calls, writes, reads, hit_rate, *saved = cells
    assert name == "lease-2026.txt"
    assert (calls, hits, llm_calls, writes, reads) == ("4", "1", "3", "2,000 / 0", "4,000")
    assert hit_rate == "66.7%"
    # Response cache: one hit of an entry that cost 100 + 200 + 100 micro-dollars;
    # prompt cache: reads 4,000 x 0.9 minus writes 2,000 x 0.25.
    assert saved == ["$0.0004", "$0.0031"]


def test_an_empty_list_says_how_to_send_a_document(staff_client):
    html = staff_client.get(URL).content.decode()

    assert 'data-testid="empty"' in html
    assert "Context document" in html
    assert "document=" in html


def test_a_documents_page_shows_its_figures_questions_and_entries(staff_client, contract):
    html = staff_client.get(reverse("extractor:document", args=[contract.pk])).content.decode()

    assert figure(html, "write-tokens") == "2,000 / 0 tokens"
    assert figure(html, "read-tokens") == "4,000 tokens"
    assert figure(html, "prompt-hit-rate").startswith("66.7% (2 of 3 LLM calls read it)")
    assert figure(html, "prompt-saved") == "$0.0031"
    assert figure(html, "response-hits") == "1"
    assert figure(html, "response-saved") == "$0.0004"
    assert "3 distinct questions" in html
    for question in ("Who is the tenant?", "When does it end?", "What is the rent?"):
        assert question in html
    entry_links = re.findall(
        r'<tr data-testid="document-entry">\s*<td><a href="(/entries/\d+/)"', html
    )
    assert len(entry_links) == 3
    assert len(re.findall(r'data-testid="document-call"', html)) == 4


def test_a_document_no_call_cached_says_it_may_be_below_the_minimum(staff_client, settings):
    settings.EXTRACTOR_PRICES = PRICES
    small = DocumentFactory(text="Short.")
    ask(small, "Anything?")

    html = staff_client.get(reverse("extractor:document", args=[small.pk])).content.decode()

    assert 'data-testid="not-cached"' in html
    assert "minimum" in html


def test_the_entries_of_a_document_page_by_their_own_cursor(staff_client, contract, monkeypatch):
    monkeypatch.setattr("extractor.views.documents.ENTRIES_PER_PAGE", 2)
    url = reverse("extractor:document", args=[contract.pk])

    first = staff_client.get(url).content.decode()
    (next_url,) = re.findall(r'href="(\?entries_after=[^"]+)"', first)
    second = staff_client.get(url + next_url.replace("&amp;", "&")).content.decode()

    assert len(re.findall(r'data-testid="document-entry"', first)) == 2
    assert len(re.findall(r'data-testid="document-entry"', second)) == 1
    # The calls list keeps its first page.
    assert len(re.findall(r'data-testid="document-call"', second)) == 4


def test_a_damaged_page_link_shows_the_first_page(staff_client, contract):
    url = reverse("extractor:document", args=[contract.pk])

    response = staff_client.get(url, {"calls_after": "not-a-cursor"})

    assert response.status_code == 200
    assert b'data-testid="bad-cursor"' in response.content
    assert response.content.count(b'data-testid="document-call"') == 4


def test_an_unknown_document_is_404(staff_client):
    assert staff_client.get(reverse("extractor:document", args=[999999])).status_code == 404


def test_htmx_gets_only_the_lists(staff_client, contract):
    url = reverse("extractor:document", args=[contract.pk])

    html = staff_client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert 'id="document-entries"' in html
    assert "<h1>" not in html


def test_the_pages_are_staff_only(plain_user_client, contract):
    for url in (URL, reverse("extractor:document", args=[contract.pk])):
        assert plain_user_client.get(url).status_code in (302, 403)


def test_the_nav_links_the_documents_page(staff_client):
    html = staff_client.get(URL).content.decode()

    assert re.search(rf'<a href="{URL}" aria-current="page">Documents</a>', html)


def test_the_admin_shows_documents_read_only(client, contract):
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(superuser)

    listing = client.get(reverse("admin:extractor_document_changelist"))
    add = client.get(reverse("admin:extractor_document_add"))
    delete = client.post(reverse("admin:extractor_document_delete", args=[contract.pk]))

    assert listing.status_code == 200
    assert b"lease-2026.txt" in listing.content
    assert add.status_code == 403
    assert delete.status_code == 403
    assert Document.objects.filter(pk=contract.pk).exists()


@pytest.mark.parametrize("model", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
def test_three_questions_on_one_document_show_one_write_and_two_reads(
    staff_client, fake_llm, flush_records, settings, model
):
    """Real extractions against the fake provider, which caches as each real API does."""
    fake_llm.serve_anthropic(settings)
    document = document_store("handbook.txt", "Staff handbook. " + "Every rule applies. " * 2000)
    for question in ("Ada is 36", "Grace is 85", "Linus is 54"):
        extraction.extract(question, "UserDetail", model, document=document)
    flush_records()

    html = staff_client.get(reverse("extractor:document", args=[document.pk])).content.decode()

    (figures,) = document_figures([document])
    assert (figures.prompt.llm_calls, figures.prompt.reading_calls) == (3, 2)
    assert figure(html, "prompt-hit-rate").startswith("66.7% (2 of 3 LLM calls read it)")
    if model.startswith("anthropic/"):
        # Anthropic reports the write; OpenAI caches without saying it wrote.
        assert figures.prompt.write_tokens > 0
        assert figures.prompt.read_tokens == 2 * figures.prompt.write_tokens
    else:
        assert figures.prompt.read_tokens > 0
    assert len(re.findall(r'data-testid="document-entry"', html)) == 3
    # The overview's tables, from the counters per model and the call log per document.
    tables = staff_client.get(reverse("extractor:overview")).context["prompt_caching"]
    (per_model,) = tables.by_model
    (per_document,) = tables.by_document
    for row in (per_model, per_document):
        assert (row.llm_calls, row.read_tokens) == (3, figures.prompt.read_tokens)
        assert row.write_tokens == figures.prompt.write_tokens
