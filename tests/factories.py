"""Rows for page tests that do not need a real extraction (factory-boy).

Tests that exercise the cache itself go through the decorator and the FakeLLM
instead; these are for filling lists, filters and counts.
"""

from __future__ import annotations

import hashlib

import factory
from django.utils import timezone

from extractor.models import CachedFunction, Call, Document, Entry, Invalidation, SchemaVersion
from extractor.recording.rollups import Rollups, counts_of
from extractor.recording.tally import HOUR, Latencies


def _hex(seed: object) -> str:
    return hashlib.sha256(str(seed).encode()).hexdigest()


class SchemaVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SchemaVersion

    name = "extractor.schemas.UserDetail"
    number = factory.Sequence(lambda n: n + 1)
    fingerprint = factory.LazyAttribute(lambda o: _hex(f"{o.name}-{o.number}"))
    json_schema = factory.LazyAttribute(
        lambda o: {
            "title": o.name.rsplit(".", 1)[-1],
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        }
    )
    field_order = factory.LazyAttribute(lambda o: list(o.json_schema.get("properties", {})))


class CachedFunctionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CachedFunction
        django_get_or_create = ("name",)

    name = "extractor.extraction:extract_UserDetail"
    code_fingerprint = factory.LazyFunction(lambda: _hex("code-v1"))
    schema_version = factory.SubFactory(SchemaVersionFactory)
    backend = "disk:///tmp/cache"
    last_seen_at = factory.LazyFunction(timezone.now)


class EntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entry

    key = factory.Sequence(lambda n: _hex(f"key-{n}"))
    function = "extractor.extraction:extract_UserDetail"
    schema_version = factory.SubFactory(SchemaVersionFactory)
    code_fingerprint = factory.LazyFunction(lambda: _hex("code-v1"))
    input_fingerprint = factory.Sequence(lambda n: _hex(f"input-{n}"))
    arguments = factory.Sequence(
        lambda n: {"text": f"Person {n} is {20 + n % 50}", "model": "gpt-4o-mini"}
    )
    input_preview = factory.LazyAttribute(
        lambda o: " · ".join(str(v) for v in o.arguments.values())
    )
    output = factory.Sequence(lambda n: {"name": f"Person {n}", "age": 20 + n % 50})
    llm_provider = "openai"
    llm_model = "gpt-4o-mini"
    prompt_tokens = 120
    completion_tokens = 30
    latency_ms = 850.0


class CallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Call

    entry = factory.SubFactory(EntryFactory)
    key = factory.LazyAttribute(lambda o: o.entry.key if o.entry else _hex("orphan"))
    function = factory.LazyAttribute(lambda o: o.entry.function if o.entry else "tests:f")
    # The writer always knows the schema (a call without an entry still has one).
    schema_version = factory.LazyAttribute(
        lambda o: o.entry.schema_version if o.entry else SchemaVersionFactory()
    )
    outcome = Call.Outcome.HIT
    latency_ms = 0.02
    llm_provider = "openai"
    llm_model = factory.LazyAttribute(lambda o: o.entry.llm_model if o.entry else "gpt-4o-mini")

    @classmethod
    def _after_postgeneration(cls, instance: Call, create: bool, results: object = None) -> None:
        if create:
            count_call(instance)


def count_call(call: Call) -> None:
    """Add a call laid out by hand to the counters, as the recorder's writer does
    (the overview reads the counters, never the call log)."""
    entry = call.entry
    version = call.schema_version_id or (entry.schema_version_id if entry else None)
    if version is None:
        return  # the writer always knows it; a row without one cannot be filed
    latencies = Latencies()
    latencies.add(call.latency_ms / 1000)
    if call.outcome == Call.Outcome.HIT:
        # A hit counts what its entry's LLM call cost: what it saved.
        source: Entry | Call | None = entry
        model, original = (entry.llm_model, entry.latency_ms) if entry else ("", 0.0)
    else:
        source, model, original = call, call.llm_model, 0.0
    counts = counts_of(
        latencies,
        itemised=1,
        without_entry=int(call.outcome == Call.Outcome.HIT and entry is None),
        tokens=(
            (source.prompt_tokens, source.completion_tokens, source.cached_prompt_tokens)
            if source
            else (0, 0, 0)
        ),
        writes=(source.cache_write_tokens, source.cache_write_1h_tokens) if source else (0, 0),
        original_latency_ms=original,
    )
    rollups = Rollups()
    hour = int(call.created_at.timestamp()) // HOUR
    rollups.add(hour, call.function, version, model, call.outcome, counts)
    rollups.write()


class DocumentFactory(factory.django.DjangoModelFactory):
    """A stored context document; calls and entries name it by `document_sha=doc.sha256`."""

    class Meta:
        model = Document

    name = factory.Sequence(lambda n: f"contract-{n}.txt")
    text = factory.Sequence(lambda n: f"Clause {n}. " + "The parties agree. " * 400)
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.text.encode()).hexdigest())
    size_bytes = factory.LazyAttribute(lambda o: len(o.text.encode()))


class InvalidationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invalidation

    action = Invalidation.Action.FUNCTION
    target = "extractor.extraction:extract_UserDetail"
