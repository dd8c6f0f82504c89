"""The provider's API key never reaches a recorded row, whatever the provider answers."""

from __future__ import annotations

import pytest
from django.core import serializers

from extractor import extraction
from extractor.models import CachedFunction, Call, Entry, SchemaVersion
from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.django_db


def everything_recorded() -> str:
    rows = [
        *Call.objects.all(),
        *Entry.objects.all(),
        *CachedFunction.objects.all(),
        *SchemaVersion.objects.all(),
    ]
    return serializers.serialize("json", rows)


def test_a_rejected_key_is_recorded_as_an_error_without_the_key(fake_llm, flush_records):
    fake_llm.fail_next(401, message="Incorrect API key provided.")

    with pytest.raises(Exception, match="401"):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    call = Call.objects.get()
    assert call.outcome == "error"
    assert "401" in call.error
    assert TEST_API_KEY not in everything_recorded()


def test_a_provider_that_echoes_the_key_in_its_error_does_not_leak_it_into_the_call_log(
    fake_llm, flush_records
):
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")

    with pytest.raises(Exception, match="401") as raised:
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    assert TEST_API_KEY in str(raised.value)  # what the provider sent back...
    call = Call.objects.get()
    assert call.outcome == "error"
    assert "Incorrect API key provided: ***" in call.error
    assert TEST_API_KEY not in everything_recorded()  # ...is not what was stored


def test_the_key_is_in_no_row_after_errors_misses_and_hits(fake_llm, flush_records):
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")
    with pytest.raises(Exception, match="401"):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["error", "hit", "miss"]
    assert Entry.objects.count() == 1
    assert TEST_API_KEY not in everything_recorded()
