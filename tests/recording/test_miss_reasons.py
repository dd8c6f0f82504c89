"""Why a call missed, recorded on its Call row (miss_reason and reason_detail)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from extractor import extraction
from extractor.caching import instructor_cache
from extractor.models import Call, Entry, Invalidation
from tests.recording.helpers import as_function, calls_in_order, person_model
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db


def last_call() -> Call:
    return calls_in_order()[-1]


def test_the_first_call_with_an_input_is_new_input(fake_llm, make_extractor, flush_records):
    make_extractor(person_model())("Ada Lovelace")
    flush_records()

    call = Call.objects.get()
    assert (call.outcome, call.miss_reason, call.reason_detail) == ("miss", "new_input", "")


def test_another_input_to_a_function_with_entries_is_new_input(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Grace Hopper")
    flush_records()

    assert [call.miss_reason for call in calls_in_order()] == ["new_input", "new_input"]


def test_a_hit_has_no_miss_reason(fake_llm, make_extractor, flush_records):
    extract = make_extractor(person_model())
    extract("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()

    hit = Call.objects.get(outcome="hit")
    assert (hit.miss_reason, hit.reason_detail) == ("", "")


def test_a_changed_response_model_is_schema_changed_from_v1_to_v2(
    fake_llm, make_extractor, flush_records
):
    make_extractor(person_model())("Ada Lovelace")
    make_extractor(person_model(with_age=True))("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason, call.reason_detail) == (
        "miss",
        "schema_changed",
        "v1 → v2",
    )


def test_another_model_for_the_same_text_is_model_changed(fake_llm, flush_records):
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason, call.reason_detail) == (
        "miss",
        "model_changed",
        "gpt-4o-mini → gpt-4o",
    )
    assert call.llm_model == "gpt-4o"


def _first_body(llm, response_model):
    def extract(text: str, model: str = "gpt-4o-mini"):
        return llm.chat.completions.create(
            model=model,
            response_model=response_model,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def _second_body(llm, response_model):
    def extract(text: str, model: str = "gpt-4o-mini"):
        return llm.chat.completions.create(
            model=model,
            response_model=response_model,
            messages=[
                {"role": "system", "content": "Extract the person the text is about."},
                {"role": "user", "content": text},
            ],
        )

    return extract


def test_an_edited_function_body_is_code_changed(llm, fake_llm, flush_records):
    from extractor.caching import instructor_cache

    model = person_model()
    before = instructor_cache(as_function(_first_body(llm, model), model, "extract_person"))
    after = instructor_cache(as_function(_second_body(llm, model), model, "extract_person"))
    assert before.cache.info.name == after.cache.info.name
    assert before.cache.info.code_fingerprint != after.cache.info.code_fingerprint

    before("Ada Lovelace")
    after("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason) == ("miss", "code_changed")
    assert call.reason_detail == (
        f"{before.cache.info.code_fingerprint[:8]} → {after.cache.info.code_fingerprint[:8]}"
    )


def test_a_bumped_version_is_version_changed(fake_llm, make_extractor, flush_records):
    model = person_model()
    make_extractor(model, version=1)("Ada Lovelace")
    make_extractor(model, version=2)("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason, call.reason_detail) == (
        "miss",
        "version_changed",
        "1 → 2",
    )


def test_a_first_version_after_none_is_version_changed(fake_llm, make_extractor, flush_records):
    model = person_model()
    make_extractor(model)("Ada Lovelace")
    make_extractor(model, version="2024-06")("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.miss_reason, call.reason_detail) == ("version_changed", "— → 2024-06")


def test_a_value_past_its_ttl_is_expired(fake_llm, make_extractor, flush_records):
    extract = make_extractor(person_model(), ttl=0.2)
    extract("Ada Lovelace")
    time.sleep(0.5)
    extract("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason) == ("miss", "expired")
    first = Entry.objects.order_by("created_at", "id").first()
    assert call.reason_detail == f"expired at {first.expires_at:%Y-%m-%d %H:%M:%S}"
    assert fake_llm.count == 2


def test_an_invalidated_entry_is_invalidated_and_names_the_invalidation(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()
    invalidation = Invalidation.objects.create(action="entry", target=key[:12], status="done")
    Entry.objects.filter(key=key).update(status="invalidated", invalidation=invalidation)
    assert extract.cache.backend().delete(key)

    extract("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason) == ("miss", "invalidated")
    assert call.reason_detail == f"One entry {key[:12]}"
    # The invalidated row keeps its status as history; the new value gets a live row.
    assert sorted(Entry.objects.filter(key=key).values_list("status", flat=True)) == [
        "invalidated",
        "live",
    ]


def test_an_invalidated_entry_without_an_invalidation_row_is_still_invalidated(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()
    Entry.objects.filter(key=key).update(status="invalidated")
    extract.cache.backend().delete(key)

    extract("Ada Lovelace")
    flush_records()

    assert (last_call().miss_reason, last_call().reason_detail) == ("invalidated", "")


def test_a_value_gone_from_the_backend_while_its_row_is_live_is_evicted(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()
    extract.cache.backend().delete(key)

    extract("Ada Lovelace")
    flush_records()

    call = last_call()
    assert (call.outcome, call.miss_reason, call.reason_detail) == (
        "miss",
        "evicted",
        "the backend no longer held the value",
    )


def test_an_eviction_and_a_store_in_one_batch_is_still_evicted(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model(), ttl=3600)
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    extract.cache.backend().delete(key)
    extract("Ada Lovelace")
    flush_records()

    assert [call.miss_reason for call in calls_in_order()] == ["new_input", "evicted"]


def test_garbage_under_the_key_is_corrupt_with_the_parse_error(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model())
    key = extract.cache.cache_key("Ada Lovelace")
    extract("Ada Lovelace")
    extract.cache.backend().set(key, "{not json")

    result = extract("Ada Lovelace")
    flush_records()

    assert result.name
    call = last_call()
    assert (call.outcome, call.miss_reason) == ("miss", "corrupt")
    assert call.reason_detail.startswith("ValidationError")
    assert fake_llm.count == 2


def test_an_unreachable_redis_is_backend_error_and_the_call_still_answers(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model(), backend=f"redis://127.0.0.1:{free_port()}/0")

    result = extract("Ada Lovelace")
    flush_records()

    assert result.name == "name of Ada Lovelace"
    call = Call.objects.get()
    assert (call.outcome, call.miss_reason) == ("miss", "backend_error")
    assert call.reason_detail.startswith("ConnectionError")
    assert call.entry is None
    assert not Entry.objects.exists()


def test_calls_while_redis_is_down_keep_the_backend_error_reason(
    fake_llm, make_extractor, flush_records
):
    extract = make_extractor(person_model(), backend=f"redis://127.0.0.1:{free_port()}/0")

    extract("Ada Lovelace")
    extract("Ada Lovelace")
    flush_records()

    assert [call.miss_reason for call in calls_in_order()] == ["backend_error", "backend_error"]
    assert fake_llm.count == 2


def test_an_adopted_value_that_outlives_its_ttl_is_expired(fake_llm, make_extractor, flush_records):
    extract = make_extractor(person_model(), ttl=0.3)
    extract("Ada Lovelace")
    flush_records()
    Entry.objects.all().delete()
    extract("Ada Lovelace")  # a hit on a value this database never saw stored
    flush_records()
    adopted = Entry.objects.get()
    assert adopted.arguments is None
    assert adopted.expires_at is not None

    time.sleep(0.6)
    extract("Ada Lovelace")
    flush_records()

    assert (last_call().outcome, last_call().miss_reason) == ("miss", "expired")


def test_a_changed_environment_variable_the_function_reads_is_state_changed(
    llm, fake_llm, flush_records, monkeypatch
):
    model = person_model()
    monkeypatch.setenv("CACHESITE_TEST_PROMPT", "Be brief.")

    def extract(text: str) -> Any:
        return llm.chat.completions.create(
            model="gpt-4o-mini",
            response_model=model,
            messages=[
                {"role": "system", "content": os.environ["CACHESITE_TEST_PROMPT"]},
                {"role": "user", "content": text},
            ],
        )

    decorated = instructor_cache(as_function(extract, model, "extract_prompted"))
    decorated("Ada Lovelace")
    monkeypatch.setenv("CACHESITE_TEST_PROMPT", "Be thorough.")
    decorated("Ada Lovelace")
    flush_records()

    assert [call.miss_reason for call in calls_in_order()] == ["new_input", "state_changed"]
