"""Two things that share a short name are told apart on every page, filter and miss
reason (a built-in UserDetail and one from EXTRACTOR_SCHEMAS, say)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from extractor.models import Call
from tests.factories import CachedFunctionFactory, CallFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

BUILT_IN = "extractor.schemas.UserDetail"
OVERRIDE = "tests.schemas_for_tests.UserDetail"


@pytest.fixture
def two_user_details():
    built_in = SchemaVersionFactory(name=BUILT_IN, number=1)
    override = SchemaVersionFactory(name=OVERRIDE, number=1)
    CachedFunctionFactory(schema_version=override)
    EntryFactory(schema_version=built_in, input_preview="old")
    EntryFactory(schema_version=override, input_preview="new")
    return built_in, override


def test_the_entries_list_and_its_filters_tell_the_two_schemas_apart(
    staff_client, two_user_details
):
    built_in, _override = two_user_details

    html = staff_client.get(reverse("extractor:entries") + "?state=all").content.decode()

    assert "<td>UserDetail v1 (extractor.schemas)</td>" in html
    assert "<td>UserDetail v1 (tests.schemas_for_tests)</td>" in html
    assert f'<option value="{built_in.pk}">UserDetail v1 (extractor.schemas)</option>' in html
    assert f'<option value="{BUILT_IN}">UserDetail (extractor.schemas)</option>' in html
    assert f'<option value="{OVERRIDE}">UserDetail (tests.schemas_for_tests)</option>' in html


def test_functions_that_share_a_short_name_are_told_apart_in_the_call_log(staff_client, db):
    CachedFunctionFactory(name="app.people:extract")
    CachedFunctionFactory(name="app.places:extract")
    CallFactory(entry=EntryFactory(function="app.people:extract"))
    CallFactory(entry=EntryFactory(function="app.places:extract"))

    html = staff_client.get(reverse("extractor:calls")).content.decode()

    assert ">extract (app.people)</td>" in html
    assert ">extract (app.places)</td>" in html
    assert '<option value="app.places:extract">extract (app.places)</option>' in html


def test_the_schemas_page_names_both_cards_and_says_which_replaced_the_built_in(
    staff_client, two_user_details, settings
):
    from extractor.schemas import registered_schemas

    settings.EXTRACTOR_SCHEMAS = [OVERRIDE]
    registered_schemas.cache_clear()
    try:
        html = staff_client.get(reverse("extractor:schemas")).content.decode()
    finally:
        registered_schemas.cache_clear()

    assert "UserDetail (extractor.schemas)" in html
    assert "UserDetail (tests.schemas_for_tests)" in html
    replaced = html.split('data-testid="replaced-by"')[1].split("</p>")[0]
    assert OVERRIDE in replaced


def test_a_miss_caused_by_a_replaced_schema_names_both_schemas(two_user_details):
    from extractor.recording.reasons import EarlierEntries, MissContext, explain_miss

    built_in, override = two_user_details
    earlier = EntryFactory(schema_version=built_in, input_fingerprint="f" * 64)
    context = MissContext(
        key="0" * 64,
        function=earlier.function,
        namespace=earlier.namespace,
        input_fingerprint=earlier.input_fingerprint,
        schema_version=override,
        code_fingerprint=earlier.code_fingerprint,
        version=earlier.version,
        model=earlier.llm_model,
        model_argument=None,
        at=earlier.created_at.replace(year=earlier.created_at.year + 1),
    )
    found = EarlierEntries.load(keys=[], inputs=[(earlier.function, earlier.input_fingerprint)])

    reason, detail = explain_miss(context, found)

    assert reason == Call.MissReason.SCHEMA_CHANGED
    assert detail == "UserDetail v1 (extractor.schemas) → UserDetail v1 (tests.schemas_for_tests)"


def test_the_overview_breakdowns_tell_apart_what_shares_a_short_name(
    staff_client, two_user_details
):
    built_in, override = two_user_details
    CachedFunctionFactory(name="app.people:extract", schema_version=built_in)
    CachedFunctionFactory(name="app.places:extract", schema_version=override)
    CallFactory(entry=EntryFactory(function="app.people:extract", schema_version=built_in))
    CallFactory(entry=EntryFactory(function="app.places:extract", schema_version=override))

    html = staff_client.get(reverse("extractor:overview")).content.decode()

    assert '<th scope="row" title="app.people:extract">extract (app.people)</th>' in html
    assert '<th scope="row" title="app.places:extract">extract (app.places)</th>' in html
    assert f'<th scope="row" title="{BUILT_IN}">UserDetail (extractor.schemas)</th>' in html
    assert f'<th scope="row" title="{OVERRIDE}">UserDetail (tests.schemas_for_tests)</th>' in html
