"""Provider prompt caching, per context document and per model, kept apart from the
response cache.

Two layers save money on different calls and never on the same token: the response
cache (this site) answers a hit without calling the LLM, and saved what its entry's
call cost; the provider's prompt cache bills, on the calls that still reached the
LLM, a prompt prefix it has seen at the cached-input price, and bills writing it
above the input price (the write premium, subtracted from its saving).

Per document the figures are read from the call log (Call.document_sha): every call
that reaches the LLM is itemised, so for those it is complete within retention; hits
past EXTRACTOR_ITEMISED_HITS_PER_SECOND are only counted, in the counters, which know
no document. Per model they are read from the counters, which count every call.
Every figure is a GROUP BY in the database; Python only adds up its few rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from extractor.models import Call, Document, Entry
from extractor.selectors.keyset import (
    Cursor,
    KeysetPage,
    Ordering,
    SortKey,
    keyset_page,
    parse_cursor,
)

# counters_in_window: the counter rows of the overview's window, read as its other figures are.
from extractor.selectors.stats import (
    NO_MODEL,
    call_cost,
    counters_in_window,
    prompt_cache_saving,
)

# Every outcome but a hit called the LLM (bypasses and replays too).
LLM_OUTCOMES = (Call.Outcome.MISS, Call.Outcome.ERROR, Call.Outcome.BYPASS, Call.Outcome.REPLAY)
NEWEST_FIRST = Ordering("newest", (SortKey("created_at"), SortKey("id")))
# Documents are few (one per distinct text); the overview names the busiest.
DOCUMENTS_IN_OVERVIEW = 20


@dataclass
class PromptCaching:
    """What the provider's prompt cache did on the LLM calls of one model or document."""

    label: str
    name: str = ""  # the model, or the document's sha256; empty for a total
    llm_calls: int = 0
    # LLM calls that reported input tokens: the ones the provider billed, which could
    # have read its cache (an error before the provider answered reports none).
    billed_calls: int = 0
    reading_calls: int = 0  # of those, calls that read the cache (known from the call log)
    prompt_tokens: int = 0  # every input token, reads and writes included
    read_tokens: int = 0
    write_tokens: int = 0  # every write, 5-minute and 1-hour
    write_1h_tokens: int = 0
    saving: float = 0.0  # USD: reads' discount minus the writes' premium
    unpriced_models: set[str] = field(default_factory=set)
    # The stored Document of a per-document row (None: calls labelled with a hash
    # nothing stored, e.g. through call_labels() directly).
    document_id: int | None = None

    @property
    def write_5m_tokens(self) -> int:
        return self.write_tokens - self.write_1h_tokens

    @property
    def read_share(self) -> float | None:
        """The part of the input tokens the provider read from its cache."""
        return self.read_tokens / self.prompt_tokens if self.prompt_tokens else None

    @property
    def hit_rate(self) -> float | None:
        """LLM calls that read the cache over LLM calls that could (billed ones)."""
        return self.reading_calls / self.billed_calls if self.billed_calls else None

    @property
    def used_cache(self) -> bool:
        return bool(self.read_tokens or self.write_tokens)

    def add(self, row: Mapping[str, Any]) -> None:
        """One summed row of LLM calls of one model (`llm_model`)."""
        model = row["llm_model"]
        read, write, write_1h = row["read"] or 0, row["write"] or 0, row["write_1h"] or 0
        self.llm_calls += row["calls"] or 0
        self.billed_calls += row.get("billed") or 0
        self.reading_calls += row.get("reading") or 0
        self.prompt_tokens += row["prompt"] or 0
        self.read_tokens += read
        self.write_tokens += write
        self.write_1h_tokens += write_1h
        if not (read or write):
            return
        saving = prompt_cache_saving(model, read=read, write=write, write_1h=write_1h)
        if saving is None:
            self.unpriced_models.add(model or NO_MODEL)
        else:
            self.saving += saving


@dataclass
class ResponseCaching:
    """What the response cache (this site's hits) saved on one document's questions."""

    hits: int = 0
    # Hits whose entry row is gone: counted, but what they saved is unknown.
    hits_without_entry: int = 0
    saving: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)

    def add(self, row: Mapping[str, Any]) -> None:
        """Hits of entries of one model: each saved its entry's call."""
        hits, without = row["calls"] or 0, row["without_entry"] or 0
        self.hits += hits
        self.hits_without_entry += without
        if hits == without:
            return
        model = row["entry__llm_model"] or ""
        cost = call_cost(
            model,
            row["prompt"] or 0,
            row["cached"] or 0,
            row["completion"] or 0,
            write=row["write"] or 0,
            write_1h=row["write_1h"] or 0,
        )
        if cost is None:
            self.unpriced_models.add(model or NO_MODEL)
        else:
            self.saving += cost


@dataclass
class DocumentFigures:
    """One document's calls in the call log, the two layers apart."""

    document: Document
    prompt: PromptCaching
    response: ResponseCaching = field(default_factory=ResponseCaching)

    @property
    def calls(self) -> int:
        return self.prompt.llm_calls + self.response.hits

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(self.prompt.unpriced_models | self.response.unpriced_models)


def _llm_sums(calls: QuerySet[Call], *keys: str) -> QuerySet[Call, dict[str, Any]]:
    """The LLM calls among `calls`, summed per `keys` and model."""
    sums: QuerySet[Call, dict[str, Any]] = (
        calls.filter(outcome__in=LLM_OUTCOMES)
        .values(*keys, "llm_model")
        .annotate(
            calls=Count("id"),
            billed=Count("id", filter=Q(prompt_tokens__gt=0)),
            reading=Count("id", filter=Q(cached_prompt_tokens__gt=0)),
            prompt=Sum("prompt_tokens"),
            read=Sum("cached_prompt_tokens"),
            write=Sum("cache_write_tokens"),
            write_1h=Sum("cache_write_1h_tokens"),
        )
        .order_by()
    )
    return sums


def _hit_sums(calls: QuerySet[Call], *keys: str) -> QuerySet[Call, dict[str, Any]]:
    """The hits among `calls`, summed per `keys` and their entry's model: what they saved."""
    sums: QuerySet[Call, dict[str, Any]] = (
        calls.filter(outcome=Call.Outcome.HIT)
        .values(*keys, "entry__llm_model")
        .annotate(
            calls=Count("id"),
            without_entry=Count("id", filter=Q(entry__isnull=True)),
            prompt=Sum("entry__prompt_tokens"),
            cached=Sum("entry__cached_prompt_tokens"),
            completion=Sum("entry__completion_tokens"),
            write=Sum("entry__cache_write_tokens"),
            write_1h=Sum("entry__cache_write_1h_tokens"),
        )
        .order_by()
    )
    return sums


def document_figures(documents: Iterable[Document]) -> list[DocumentFigures]:
    """Each document's figures, in the order given: two GROUP BY queries for them all."""
    figures = {
        document.sha256: DocumentFigures(document, PromptCaching(document.name, document.sha256))
        for document in documents
    }
    calls = Call.objects.filter(document_sha__in=list(figures))
    for row in _llm_sums(calls, "document_sha"):
        figures[row["document_sha"]].prompt.add(row)
    for row in _hit_sums(calls, "document_sha"):
        figures[row["document_sha"]].response.add(row)
    return list(figures.values())


def document_cursor(params: Mapping[str, str]) -> Cursor | None:
    """The page of documents asked for; BadCursor when it cannot be read."""
    return parse_cursor(params, NEWEST_FIRST, Document)


def document_page(cursor: Cursor | None, size: int) -> KeysetPage[Document]:
    """Documents newest first; `text` is left unread (a document may be megabytes)."""
    return keyset_page(Document.objects.defer("text"), NEWEST_FIRST, cursor, size)


def document_detail(pk: int) -> QuerySet[Document]:
    return Document.objects.filter(pk=pk).defer("text")


def document_named(sha256: str) -> Document | None:
    """The stored document of a call or entry's `document_sha`, for its name and link."""
    if not sha256:
        return None
    return Document.objects.filter(sha256=sha256).only("pk", "name").first()


@dataclass(frozen=True)
class Question:
    """One distinct question asked with a document (an input preview) and its entries."""

    preview: str
    entries: int
    hits: int


def document_questions(document: Document, limit: int) -> list[Question]:
    """The distinct questions of the document's entries, the most recently asked first."""
    rows = (
        Entry.objects.filter(document_sha=document.sha256)
        .values("input_preview")
        .annotate(entries=Count("id"), hits=Sum("hit_count"), latest=Max("created_at"))
        .order_by("-latest", "input_preview")[:limit]
    )
    return [Question(row["input_preview"], row["entries"], row["hits"] or 0) for row in rows]


def document_question_count(document: Document) -> int:
    return (
        Entry.objects.filter(document_sha=document.sha256)
        .values("input_preview")
        .distinct()
        .count()
    )


def entry_cursor(params: Mapping[str, str]) -> Cursor | None:
    return parse_cursor(_prefixed(params, "entries_"), NEWEST_FIRST, Entry)


def document_entries(document: Document, cursor: Cursor | None, size: int) -> KeysetPage[Entry]:
    """The document's entries newest first, without their outputs."""
    entries = (
        Entry.objects.filter(document_sha=document.sha256)
        .select_related("schema_version")
        .defer("output", "arguments")
    )
    return keyset_page(entries, NEWEST_FIRST, cursor, size)


def call_cursor(params: Mapping[str, str]) -> Cursor | None:
    return parse_cursor(_prefixed(params, "calls_"), NEWEST_FIRST, Call)


def document_calls(document: Document, cursor: Cursor | None, size: int) -> KeysetPage[Call]:
    """The document's calls newest first, from the (document_sha, created_at) index."""
    return keyset_page(
        Call.objects.filter(document_sha=document.sha256), NEWEST_FIRST, cursor, size
    )


def _prefixed(params: Mapping[str, str], prefix: str) -> dict[str, str]:
    """A list's own `after`/`before`: a page shows two lists, each paged on its own."""
    return {
        "after": params.get(f"{prefix}after", ""),
        "before": params.get(f"{prefix}before", ""),
    }


@dataclass
class PromptCachingOverview:
    """The overview's provider prompt-caching tables, apart from the response cache's."""

    by_model: list[PromptCaching]
    by_document: list[PromptCaching]
    total: PromptCaching

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(self.total.unpriced_models)


def prompt_caching_overview(
    *, since: dt.datetime | None, until: dt.datetime, whole_days: bool
) -> PromptCachingOverview:
    """Per model from the counters (every call), per document from the call log."""
    rollups = counters_in_window(since, until, whole_days=whole_days)
    model_rows = (
        rollups.exclude(outcome=Call.Outcome.HIT)
        .values("llm_model")
        .annotate(
            calls=Sum("calls"),
            prompt=Sum("prompt_tokens"),
            read=Sum("cached_prompt_tokens"),
            write=Sum("cache_write_tokens"),
            write_1h=Sum("cache_write_1h_tokens"),
        )
        .order_by()
    )
    total = PromptCaching("All")
    by_model = []
    for row in model_rows:
        figures = PromptCaching(row["llm_model"] or NO_MODEL, row["llm_model"])
        figures.add(row)
        total.add(row)
        by_model.append(figures)
    calls = Call.objects.filter(created_at__lte=until).exclude(document_sha="")
    if since is not None:
        # From the start of the hour, as the counters read (and the page says).
        hour = since.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        calls = calls.filter(created_at__gte=hour)
    per_document: dict[str, PromptCaching] = {}
    for sums in _llm_sums(calls, "document_sha"):
        sha = sums["document_sha"]
        per_document.setdefault(sha, PromptCaching(sha[:12], sha)).add(sums)
    busiest = sorted(per_document.values(), key=_busiest)[:DOCUMENTS_IN_OVERVIEW]
    stored = Document.objects.filter(sha256__in=[row.name for row in busiest])
    for sha, pk, name in stored.values_list("sha256", "pk", "name"):
        per_document[sha].label, per_document[sha].document_id = name, pk
    return PromptCachingOverview(
        by_model=sorted(by_model, key=_busiest), by_document=busiest, total=total
    )


def _busiest(figures: PromptCaching) -> tuple[int, int, str]:
    return (-figures.llm_calls, -figures.prompt_tokens, figures.label)
