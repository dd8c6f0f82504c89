"""Every call becomes rows: Call per invocation, Entry per stored value, numbered schemas."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import instructor
import openai
import pytest

from extractor.caching import bypass, instructor_cache
from extractor.models import CachedFunction, Call, Entry, SchemaVersion
from extractor.recording import DatabaseRecorder
from extractor.recording.inserts import COPY_FROM_ROWS
from tests.recording.helpers import (
    FUNCTION_MODULE,
    SCHEMA_MODULE,
    as_function,
    calls_in_order,
    person_model,
)

pytestmark = pytest.mark.django_db

FUNCTION_NAME = f"{FUNCTION_MODULE}:extract_person"
SCHEMA_NAME = f"{SCHEMA_MODULE}.Person"


def test_a_miss_records_a_call_and_an_entry_with_usage_arguments_and_output(
    fake_llm, make_extractor, flush_records
):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)
    fake_llm.answer_with({"name": "Jason", "age": 25})
    extract = make_extractor(person_model(with_age=True))

    result = extract("Jason is 25 years old", model="gpt-4o-mini")
    flush_records()

    assert result.model_dump() == {"name": "Jason", "age": 25}
    key = extract.cache.cache_key("Jason is 25 years old", model="gpt-4o-mini")
    version = SchemaVersion.objects.get()
    call = Call.objects.get()
    assert call.outcome == "miss"
    assert call.key == key
    assert call.function == FUNCTION_NAME
    assert call.schema_version == version
    assert call.llm_provider == "openai"
    assert call.llm_model == "gpt-4o-mini"
    assert call.latency_ms > 0
    assert (call.prompt_tokens, call.completion_tokens, call.cached_prompt_tokens) == (
        1500,
        40,
        1024,
    )
    assert call.input_preview == "Jason is 25 years old · gpt-4o-mini"
    assert call.error == ""

    entry = Entry.objects.get()
    assert call.entry == entry
    assert entry.key == key
    assert entry.function == FUNCTION_NAME
    assert entry.schema_version == version
    assert entry.code_fingerprint == extract.cache.info.code_fingerprint
    assert entry.arguments == {"text": "Jason is 25 years old", "model": "gpt-4o-mini"}
    assert entry.output == {"name": "Jason", "age": 25}
    assert entry.status == "live"
    assert entry.hit_count == 0
    assert entry.last_hit_at is None
    assert entry.created_at is not None
    assert entry.expires_at is None
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cached_prompt_tokens) == (
        1500,
        40,
        1024,
    )
    assert (entry.llm_provider, entry.llm_model) == ("openai", "gpt-4o-mini")


def test_arguments_passed_positionally_or_by_default_are_stored_by_parameter_name(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())

    extract("Ada Lovelace")
    flush_records()

    assert Entry.objects.get().arguments == {"text": "Ada Lovelace", "model": "gpt-4o-mini"}


def test_each_hit_records_a_call_linked_to_the_entry_and_counts_it(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    for _ in range(3):
        extract("Ada Lovelace")
    flush_records()

    assert fake_llm.count == 1
    entry = Entry.objects.get()
    calls = calls_in_order()
    assert [call.outcome for call in calls] == ["miss", "hit", "hit", "hit"]
    hits = calls[1:]
    assert all(call.entry_id == entry.pk for call in hits)
    assert all(call.key == entry.key and call.function == FUNCTION_NAME for call in hits)
    assert all(call.schema_version_id == entry.schema_version_id for call in hits)
    assert all(call.latency_ms > 0 for call in hits)
    # A hit cost no LLM call: no tokens, but it names the model that answered.
    assert all(
        (call.prompt_tokens, call.completion_tokens, call.cached_prompt_tokens) == (0, 0, 0)
        for call in hits
    )
    assert {call.llm_model for call in hits} == {"gpt-4o-mini"}
    assert {call.input_preview for call in hits} == {entry.input_preview}
    assert entry.hit_count == 3
    assert entry.last_hit_at == hits[-1].created_at


def test_hits_flushed_in_several_batches_add_up_on_the_entry(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    for batch in (2, 5):
        for _ in range(batch):
            extract("Ada Lovelace")
        flush_records()

    entry = Entry.objects.get()
    assert entry.hit_count == 7
    assert Call.objects.filter(outcome="hit", entry=entry).count() == 7
    newest_hit = Call.objects.filter(outcome="hit").order_by("-created_at", "-id").first()
    assert entry.last_hit_at == newest_hit.created_at


def test_a_provider_error_reaches_the_caller_and_is_recorded_as_an_error_call(
    fake_llm, make_extractor, flush_records
):
    fake_llm.fail_next(500, message="the upstream is on fire")
    extract = make_extractor(person_model())

    with pytest.raises(Exception, match="500") as raised:
        extract("Ada Lovelace")
    flush_records()

    call = Call.objects.get()
    assert call.outcome == "error"
    assert call.entry is None
    assert call.function == FUNCTION_NAME
    assert call.key == extract.cache.cache_key("Ada Lovelace")
    assert type(raised.value).__name__ in call.error
    assert "the upstream is on fire" in call.error
    assert not Entry.objects.exists()


def test_a_call_after_an_error_is_a_miss_that_stores_the_value(
    fake_llm, make_extractor, flush_records
):
    fake_llm.fail_next(500)
    extract = make_extractor(person_model())
    with pytest.raises(Exception, match="500"):
        extract("Ada Lovelace")

    extract("Ada Lovelace")
    flush_records()

    assert [call.outcome for call in calls_in_order()] == ["error", "miss"]
    assert Entry.objects.get().status == "live"


def test_a_bypassed_call_is_recorded_as_bypass_and_stores_nothing(
    fake_llm, make_extractor, flush_records
):
    fake_llm.report_usage(prompt_tokens=200, completion_tokens=10, cached_tokens=0)
    extract = make_extractor(person_model())

    with bypass():
        extract("Ada Lovelace")
        extract("Ada Lovelace")
    flush_records()

    assert fake_llm.count == 2
    calls = calls_in_order()
    assert [call.outcome for call in calls] == ["bypass", "bypass"]
    assert all(call.entry is None for call in calls)
    assert all(call.miss_reason == "" for call in calls)
    assert {(call.prompt_tokens, call.completion_tokens) for call in calls} == {(200, 10)}
    assert not Entry.objects.exists()
    assert extract.cache.backend().get(extract.cache.cache_key("Ada Lovelace")) is None


def test_schema_versions_are_numbered_per_name_in_the_order_first_seen(
    fake_llm, make_extractor, flush_records
):
    first_model = person_model()
    second_model = person_model(with_age=True)
    first_again = person_model()

    make_extractor(first_model)("Ada Lovelace")
    flush_records()
    make_extractor(second_model)("Ada Lovelace")
    flush_records()
    make_extractor(first_again)("Ada Lovelace")
    flush_records()

    versions = list(SchemaVersion.objects.filter(name=SCHEMA_NAME).order_by("number"))
    assert [version.label for version in versions] == ["v1", "v2"]
    assert versions[0].json_schema == first_model.model_json_schema()
    assert versions[1].json_schema == second_model.model_json_schema()
    # The third model has v1's schema: its call reuses v1 (and hits v1's value).
    calls = calls_in_order()
    assert [(call.outcome, call.schema_version.label) for call in calls] == [
        ("miss", "v1"),
        ("miss", "v2"),
        ("hit", "v1"),
    ]
    assert fake_llm.count == 2


def test_a_description_change_alone_is_a_new_schema_version(
    fake_llm, make_extractor, flush_records
):
    make_extractor(person_model(name_description="The name."))("Ada Lovelace")
    make_extractor(person_model(name_description="The full name."))("Ada Lovelace")
    flush_records()

    assert list(SchemaVersion.objects.values_list("number", flat=True)) == [1, 2]
    assert fake_llm.count == 2


def test_another_schema_name_is_numbered_from_v1(fake_llm, make_extractor, flush_records):
    make_extractor(person_model())("Ada Lovelace")
    make_extractor(person_model(with_age=True))("Ada Lovelace")
    pet = person_model()
    pet.__qualname__ = "Pet"
    make_extractor(pet, name="extract_pet")("Rex the dog")
    flush_records()

    assert sorted(SchemaVersion.objects.values_list("name", "number")) == [
        (SCHEMA_NAME, 1),
        (SCHEMA_NAME, 2),
        (f"{SCHEMA_MODULE}.Pet", 1),
    ]


def test_the_cached_function_row_follows_the_current_code_and_schema(
    fake_llm, make_extractor, flush_records
):
    first = make_extractor(person_model())
    first("Ada Lovelace")
    flush_records()
    function = CachedFunction.objects.get(name=FUNCTION_NAME)
    assert function.code_fingerprint == first.cache.info.code_fingerprint
    assert function.schema_version.label == "v1"
    assert function.backend == first.cache.backend().label
    seen_first = function.last_seen_at

    second = make_extractor(person_model(with_age=True), version="2")
    second("Ada Lovelace")
    flush_records()
    function.refresh_from_db()
    assert function.schema_version.label == "v2"
    assert function.version == "2"
    assert function.last_seen_at > seen_first

    make_extractor(person_model())("Ada Lovelace")  # a hit on v1's value
    flush_records()
    function.refresh_from_db()
    assert function.schema_version.label == "v1"
    assert function.version == ""
    assert CachedFunction.objects.count() == 1


def test_a_value_stored_again_after_expiry_replaces_the_old_entry_row(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model(), ttl=0.2)
    extract("Ada Lovelace")
    flush_records()
    first = Entry.objects.get()
    assert first.expires_at is not None
    assert first.expires_at > first.created_at

    time.sleep(0.5)
    extract("Ada Lovelace")
    flush_records()

    first.refresh_from_db()
    assert first.status == "replaced"
    assert first.status_changed_at is not None
    live = Entry.objects.get(key=first.key, status="live")
    assert live.pk != first.pk
    assert live.created_at > first.created_at
    assert Entry.objects.filter(key=first.key).count() == 2
    assert calls_in_order()[-1].entry == live


def test_a_value_stored_again_after_corruption_keeps_one_live_row_per_key(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    for _ in range(2):
        extract.cache.backend().set(key, "not an envelope")
        extract("Ada Lovelace")
    flush_records()

    rows = list(Entry.objects.filter(key=key).order_by("created_at", "id"))
    assert [row.status for row in rows] == ["replaced", "replaced", "live"]
    assert fake_llm.count == 3


def test_hits_after_a_replacement_count_on_the_new_row(fake_llm, make_extractor, flush_records):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()
    extract.cache.backend().set(key, "not an envelope")
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()

    old, new = Entry.objects.filter(key=key).order_by("created_at", "id")
    assert (old.status, old.hit_count) == ("replaced", 0)
    assert (new.status, new.hit_count) == ("live", 2)


def test_hits_recorded_before_a_replacement_count_on_the_row_they_were_served_from(
    fake_llm, make_extractor, flush_records
):
    """One batch holding: miss, hit, (value corrupted), miss, hit. Each hit was served
    by the value stored just before it, so each row has one hit."""
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    extract.cache.backend().set(key, "not an envelope")
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()

    old, new = Entry.objects.filter(key=key).order_by("created_at", "id")
    assert (old.status, old.hit_count) == ("replaced", 1)
    assert (new.status, new.hit_count) == ("live", 1)
    hits = [call for call in calls_in_order() if call.outcome == "hit"]
    assert [call.entry_id for call in hits] == [old.pk, new.pk]


def test_a_hit_on_a_value_without_an_entry_row_adopts_it_from_the_backend(
    fake_llm, make_extractor, flush_records
):
    fake_llm.answer_with({"name": "Ada"})
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    flush_records()
    Entry.objects.all().delete()  # a restored database that never saw this value

    extract("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()

    entry = Entry.objects.get()
    assert entry.key == extract.cache.cache_key("Ada Lovelace")
    assert entry.function == FUNCTION_NAME
    assert entry.arguments is None
    assert entry.output == {"name": "Ada"}
    assert entry.status == "live"
    assert entry.schema_version.label == "v1"
    assert entry.code_fingerprint == extract.cache.info.code_fingerprint
    assert (entry.llm_provider, entry.llm_model) == ("openai", "gpt-4o-mini")
    assert entry.hit_count == 2
    hits = Call.objects.filter(outcome="hit")
    assert hits.count() == 2
    assert all(call.entry_id == entry.pk for call in hits)
    # The miss's call stays, detached from the deleted row.
    assert Call.objects.get(outcome="miss").entry is None


def test_callers_waiting_on_one_computation_are_recorded_as_hits(
    fake_llm, make_extractor, flush_records
):
    fake_llm.stall(0.3)  # keep the first caller's LLM call open while the others arrive
    extract = make_extractor(person_model())
    together = threading.Barrier(5)

    def call(_: int):
        together.wait()
        return extract("Ada Lovelace")

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(call, range(5)))
    flush_records()

    assert {result.name for result in results} == {"name of Ada Lovelace"}
    assert fake_llm.count == 1
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit"] * 4 + ["miss"]
    entry = Entry.objects.get()
    assert entry.hit_count == 4
    assert Call.objects.filter(outcome="hit", entry=entry).count() == 4


def test_a_replay_is_recorded_against_the_live_entry_and_stores_nothing(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")

    extract.cache.replay("Ada Lovelace")
    flush_records()

    entry = Entry.objects.get()
    replay = Call.objects.get(outcome="replay")
    assert replay.entry == entry
    assert replay.miss_reason == ""
    assert replay.prompt_tokens > 0
    assert entry.hit_count == 0
    assert fake_llm.count == 2


def test_an_async_function_records_its_miss_and_hits_like_a_sync_one(fake_llm, flush_records):
    client = instructor.from_openai(
        openai.AsyncOpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0)
    )
    person = person_model()

    async def extract(text: str, model: str = "gpt-4o-mini"):
        return await client.chat.completions.create(
            model=model,
            response_model=person,
            messages=[{"role": "user", "content": text}],
        )

    cached = instructor_cache(as_function(extract, person, "extract_person_async"))

    async def three_calls() -> None:
        for _ in range(3):
            await cached("Ada Lovelace")

    # A thread of its own: its event loop cannot clash with one another test left running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, three_calls()).result()
    flush_records()

    assert [call.outcome for call in calls_in_order()] == ["miss", "hit", "hit"]
    entry = Entry.objects.get()
    assert entry.function == f"{FUNCTION_MODULE}:extract_person_async"
    assert entry.arguments == {"text": "Ada Lovelace", "model": "gpt-4o-mini"}
    assert entry.hit_count == 2


def test_a_large_batch_of_itemised_hits_is_written_whole(
    fake_llm, make_extractor, use_recorder, django_assert_max_num_queries
):
    # Past COPY_FROM_ROWS rows PostgreSQL takes them through COPY; SQLite in
    # multi-row INSERTs. Either way every row arrives, cleaned, in one batch.
    recorder = use_recorder(DatabaseRecorder(background=False))
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    hits = COPY_FROM_ROWS + 100
    for _ in range(hits):
        extract("Ada Lovelace")

    with django_assert_max_num_queries(40):
        recorder.flush()

    assert Call.objects.filter(outcome="hit", entry__isnull=False).count() == hits
    assert Entry.objects.get().hit_count == hits
    assert Call.objects.filter(outcome="hit").exclude(input_preview="").count() == hits
