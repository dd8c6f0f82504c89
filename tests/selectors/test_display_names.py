"""Display names: one name per function and schema, unique across the database."""

from __future__ import annotations

import pytest

from extractor.selectors.display_names import display_names, unique_names
from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory


def test_a_name_no_other_shares_is_shown_short():
    assert unique_names(["app.tasks:extract_user", "myapp.schemas.Invoice"]) == {
        "app.tasks:extract_user": "extract_user",
        "myapp.schemas.Invoice": "Invoice",
    }


def test_names_that_share_a_short_name_are_followed_by_where_they_live():
    shown = unique_names(["extractor.schemas.UserDetail", "myapp.schemas.UserDetail"])

    assert shown == {
        "extractor.schemas.UserDetail": "UserDetail (extractor.schemas)",
        "myapp.schemas.UserDetail": "UserDetail (myapp.schemas)",
    }


def test_a_function_in_a_class_keeps_the_class_with_its_module():
    shown = unique_names(["app:Extractor.run", "app:run"])

    assert shown["app:Extractor.run"] == "run (app:Extractor)"
    assert shown["app:run"] == "run (app)"


@pytest.mark.django_db
def test_schema_versions_are_told_apart_by_module_only_where_needed():
    built_in = SchemaVersionFactory(name="extractor.schemas.UserDetail", number=1)
    override = SchemaVersionFactory(name="myapp.schemas.UserDetail", number=1)
    invoice = SchemaVersionFactory(name="myapp.schemas.Invoice", number=3)

    names = display_names()

    assert names.schema_version(built_in) == "UserDetail v1 (extractor.schemas)"
    assert names.schema_version(override) == "UserDetail v1 (myapp.schemas)"
    assert names.schema_version(invoice) == "Invoice v3"


@pytest.mark.django_db
def test_functions_known_only_from_their_entries_count_too():
    CachedFunctionFactory(name="app.a:extract")
    EntryFactory(function="app.b:extract")  # its function row is gone

    names = display_names()

    assert names.function("app.a:extract") == "extract (app.a)"
    assert names.function("app.b:extract") == "extract (app.b)"
