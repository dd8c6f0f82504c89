"""Provider prompt caching per document and per model, apart from the response cache."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from extractor.models import Call
from extractor.selectors.prompt_caching import document_figures, prompt_caching_overview
from tests.factories import CallFactory, DocumentFactory, EntryFactory

pytestmark = pytest.mark.django_db

# USD per million tokens: input, cached input, 5-minute write, 1-hour write, output.
PRICES = {"model-a": (1.0, 0.1, 1.25, 2.0, 2.0)}


def llm_call(document, *, read=0, write=0, write_1h=0, when=None, model="model-a", **extra):
    """A miss sent with `document`: 100 uncached input tokens beside the cache's, 50 out."""
    entry = EntryFactory(
        document_sha=document.sha256 if document else "",
        llm_model=model,
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
        created_at=when or timezone.now(),
        **extra,
    )


@pytest.fixture
def three_questions(settings):
    """One document: the first question writes 2,000 tokens to the cache, the next two
    read them; the second question is then answered twice by the response cache."""
    settings.EXTRACTOR_PRICES = PRICES
    document = DocumentFactory()
    llm_call(document, write=2000)
    second = llm_call(document, read=2000)
    llm_call(document, read=2000)
    CallFactory.create_batch(2, entry=second.entry, document_sha=document.sha256)
    return document


def test_a_documents_two_layers_are_counted_apart(three_questions):
    other = DocumentFactory()
    llm_call(other, write=5000)  # another document's calls are not this one's
    llm_call(None, read=700)  # nor a call without a document

    (figures,) = document_figures([three_questions])

    assert figures.calls == 5
    assert figures.response.hits == 2
    prompt = figures.prompt
    assert (prompt.llm_calls, prompt.write_tokens, prompt.read_tokens) == (3, 2000, 4000)
    # Two of the three LLM calls read the provider's cache.
    assert prompt.hit_rate == pytest.approx(2 / 3)
    # Reads 4,000 x (1 - 0.1) minus the write premium 2,000 x (1.25 - 1), per million.
    assert prompt.saving == pytest.approx((3600 - 500) / 1e6)
    # Each hit saved its entry's whole call: 100 input, 2,000 read, 50 out.
    assert figures.response.saving == pytest.approx(2 * (100 + 200 + 100) / 1e6)


def test_one_hour_writes_pay_their_own_premium(settings):
    settings.EXTRACTOR_PRICES = PRICES
    document = DocumentFactory()
    llm_call(document, write=1000, write_1h=1000)

    (figures,) = document_figures([document])

    assert figures.prompt.write_5m_tokens == 0
    assert figures.prompt.write_1h_tokens == 1000
    # Written and never read: the 1-hour premium, 1,000 x (2 - 1), is a loss.
    assert figures.prompt.saving == pytest.approx(-1000 / 1e6)


def test_an_unpriced_model_is_named_not_counted_as_free(settings):
    settings.EXTRACTOR_PRICES = {}
    document = DocumentFactory()
    llm_call(document, read=500, model="mystery-model")

    (figures,) = document_figures([document])

    assert figures.prompt.saving == 0
    assert figures.unpriced_models == ["mystery-model"]


def test_a_document_without_calls_has_empty_figures():
    (figures,) = document_figures([DocumentFactory()])

    assert figures.calls == 0
    assert figures.prompt.hit_rate is None


def test_the_overview_reads_models_from_the_counters_and_documents_from_the_log(
    three_questions,
):
    now = timezone.now()
    old = DocumentFactory()
    llm_call(old, write=9000, when=now - dt.timedelta(days=10))

    figures = prompt_caching_overview(since=now - dt.timedelta(days=7), until=now, whole_days=True)

    (model,) = figures.by_model
    # The hits carry their entries' tokens in the counters; they are not LLM calls.
    assert (model.label, model.llm_calls, model.write_tokens, model.read_tokens) == (
        "model-a",
        3,
        2000,
        4000,
    )
    assert model.read_share == pytest.approx(4000 / (3 * 100 + 2000 + 4000))
    (document,) = figures.by_document
    assert (document.label, document.document_id) == (three_questions.name, three_questions.pk)
    assert document.saving == pytest.approx((3600 - 500) / 1e6)


def test_the_overview_names_a_document_nothing_stored_by_its_hash(settings):
    settings.EXTRACTOR_PRICES = PRICES
    unstored = DocumentFactory.build()  # labelled by call_labels(), never stored
    llm_call(unstored, read=100)

    figures = prompt_caching_overview(since=None, until=timezone.now(), whole_days=True)

    (document,) = figures.by_document
    assert document.label == unstored.sha256[:12]
    assert document.document_id is None
