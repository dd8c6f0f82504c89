"""The built-in extraction: registry, client configuration, usage recorded."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from extractor import extraction
from extractor.llm import LLMNotConfigured
from extractor.models import Call, Entry, SchemaVersion
from extractor.schemas import Character, UnknownSchema, UserDetail, get_schema, registered_schemas

pytestmark = pytest.mark.django_db


def test_extract_calls_the_provider_once_then_serves_from_cache(fake_llm, flush_records):
    fake_llm.answer_with({"name": "Jason", "age": 25})

    first = extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    second = extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")

    # Compared as data: the first result also carries Instructor's raw completion.
    assert first.model_dump() == second.model_dump() == {"name": "Jason", "age": 25}
    assert isinstance(second, UserDetail)
    assert fake_llm.count == 1
    flush_records()
    assert list(Call.objects.order_by("created_at", "id").values_list("outcome", flat=True)) == [
        "miss",
        "hit",
    ]


def test_the_request_carries_the_key_the_model_and_the_schema_as_a_tool(fake_llm):
    extraction.extract("Ada, a mathematician", "Character", "gpt-4.1-mini")

    request = fake_llm.requests[0]
    assert request["model"] == "gpt-4.1-mini"
    assert request["tools"][0]["function"]["name"] == "Character"
    assert fake_llm.headers[0]["authorization"] == "Bearer sk-test-cachesite-secret-0123456789"


def test_usage_and_provider_cached_tokens_are_recorded(fake_llm, flush_records):
    fake_llm.report_usage(prompt_tokens=1500, completion_tokens=40, cached_tokens=1024)

    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    call = Call.objects.get()
    assert (call.prompt_tokens, call.completion_tokens, call.cached_prompt_tokens) == (
        1500,
        40,
        1024,
    )
    assert call.llm_provider == "openai"
    assert call.llm_model == "gpt-4o-mini"
    entry = Entry.objects.get()
    assert entry.cached_prompt_tokens == 1024
    assert entry.output == {"name": "name of Jason is 25", "age": 12}


def test_a_different_model_is_a_different_entry(fake_llm):
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o")

    assert fake_llm.count == 2


def test_no_api_key_is_a_clear_error_that_names_the_setting(settings, fake_llm):
    settings.OPENAI_API_KEY = ""

    with pytest.raises(LLMNotConfigured, match="Set OPENAI_API_KEY"):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    assert fake_llm.count == 0


def test_an_unknown_schema_lists_the_registered_ones():
    with pytest.raises(UnknownSchema, match="registered: UserDetail, Character"):
        get_schema("Invoice")


def test_schemas_named_in_settings_join_the_registry(settings):
    settings.EXTRACTOR_SCHEMAS = ["tests.schemas_for_tests.Invoice"]
    registered_schemas.cache_clear()
    try:
        assert get_schema("Invoice").__name__ == "Invoice"
        assert get_schema("Character") is Character
    finally:
        registered_schemas.cache_clear()


def test_a_dotted_path_that_is_not_a_model_stops_with_a_clear_error(settings):
    settings.EXTRACTOR_SCHEMAS = ["tests.schemas_for_tests.NOT_A_MODEL"]
    registered_schemas.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="is not a Pydantic model"):
            registered_schemas()
    finally:
        registered_schemas.cache_clear()


def test_the_schema_version_keeps_the_full_json_schema(fake_llm, flush_records):
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    version = SchemaVersion.objects.get()
    assert (version.name, version.number) == ("extractor.schemas.UserDetail", 1)
    assert version.json_schema == UserDetail.model_json_schema()
