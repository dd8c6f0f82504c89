"""Issue 8: one meaning of "live" on every page, and invalidate by the names the pages show."""

from __future__ import annotations

import pytest
from django.urls import reverse

from extractor.models import Entry
from tests.factories import CachedFunctionFactory, EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

CONFIRM = reverse("extractor:invalidate")
SCHEMAS = reverse("extractor:schemas")
USER_DETAIL = "extractor.extraction:extract_UserDetail"


@pytest.fixture
def rows():
    """UserDetail v1 and v2; the function's current version is v2, so v1's entry is stale."""
    v1 = SchemaVersionFactory(number=1)
    v2 = SchemaVersionFactory(number=2)
    CachedFunctionFactory(name=USER_DETAIL, schema_version=v2)
    return {
        "v1": v1,
        "v2": v2,
        "stale": EntryFactory(function=USER_DETAIL, schema_version=v1),
        "live": EntryFactory(function=USER_DETAIL, schema_version=v2),
    }


def page(client, params):
    response = client.get(CONFIRM, params)
    return response, response.content.decode().replace("&#x27;", "'")


# -- defect 3: "live" is live and not stale, everywhere -----------------------------


def test_the_schemas_page_counts_stale_entries_as_stale_not_live(staff_client, rows):
    html = staff_client.get(SCHEMAS).content.decode()

    v1, v2 = rows["v1"], rows["v2"]
    assert f'data-testid="counts-{v1.pk}">0 / 1<' in html
    assert f'data-testid="stale-{v1.pk}">1 stale<' in html
    assert f'data-testid="counts-{v2.pk}">1 / 1<' in html
    assert f'data-testid="stale-{v2.pk}"' not in html
    # A stale-only version can still be invalidated: its values are still cached.
    assert f"?action=schema_version&amp;target={v1.pk}" in html


def test_the_confirm_page_counts_stale_entries_as_stale_not_live(staff_client, rows):
    response, html = page(staff_client, {"action": "function", "target": USER_DETAIL})

    assert response.context["count"].value == 2
    assert "This will invalidate <strong>2</strong> entries of" in html
    assert 'data-testid="confirm-split">1 live, 1 stale<' in html


def test_a_stale_only_scope_is_not_called_live(staff_client, rows):
    _, html = page(staff_client, {"action": "schema_version", "target": rows["v1"].pk})

    assert "live entry" not in html
    assert 'data-testid="confirm-split">0 live, 1 stale<' in html


# -- defect 1: the names the pages show are accepted --------------------------------


def test_a_functions_short_name_is_accepted(staff_client, rows):
    response, _ = page(staff_client, {"action": "function", "target": "extract_UserDetail"})

    assert response.status_code == 200
    assert response.context["scope"].target == USER_DETAIL
    assert response.context["count"].value == 2


def test_an_ambiguous_short_name_lists_the_candidates(staff_client, rows):
    CachedFunctionFactory(name="other.module:extract_UserDetail", schema_version=rows["v2"])

    response, html = page(staff_client, {"action": "function", "target": "extract_UserDetail"})

    assert response.status_code == 400
    assert "more than one function" in html
    assert USER_DETAIL in html
    assert "other.module:extract_UserDetail" in html


@pytest.mark.parametrize("target", ["UserDetail v1", "userdetail V1", "v1"])
def test_a_schema_version_is_accepted_by_its_label(staff_client, rows, target):
    response, _ = page(staff_client, {"action": "schema_version", "target": target})

    assert response.status_code == 200
    assert response.context["scope"].target == str(rows["v1"].pk)


def test_a_bare_version_number_shared_by_two_schemas_lists_them(staff_client, rows):
    SchemaVersionFactory(name="extractor.schemas.Character", number=1)

    response, html = page(staff_client, {"action": "schema_version", "target": "v1"})

    assert response.status_code == 400
    assert "UserDetail v1" in html
    assert "Character v1" in html


def test_an_entry_is_accepted_by_its_short_key(staff_client, rows):
    entry = rows["stale"]

    response, _ = page(staff_client, {"action": "entry", "target": entry.key[:12]})

    assert response.status_code == 200
    assert response.context["scope"].target == str(entry.pk)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("abc", "is not an entry id"),  # too short for a key prefix
        ("0000000000ff", "no entry's key starts with it"),
    ],
)
def test_a_key_prefix_must_be_long_and_match(staff_client, rows, target, message):
    response, html = page(staff_client, {"action": "entry", "target": target})

    assert response.status_code == 400
    assert message in html


def test_a_key_prefix_shared_by_two_keys_is_refused(staff_client, rows):
    EntryFactory(key="abcdef12" + "0" * 56)
    EntryFactory(key="abcdef12" + "1" * 56)

    response, html = page(staff_client, {"action": "entry", "target": "abcdef12"})

    assert response.status_code == 400
    assert "more than one key" in html


def test_a_key_with_an_earlier_replaced_entry_names_the_current_one(staff_client, rows):
    key = "abcdef12" + "2" * 56
    EntryFactory(key=key, status=Entry.Status.REPLACED)
    current = EntryFactory(key=key)

    response, _ = page(staff_client, {"action": "entry", "target": key[:12]})

    assert response.status_code == 200
    assert response.context["scope"].target == str(current.pk)


# -- the chooser offers what exists ------------------------------------------------


def test_the_chooser_offers_functions_versions_and_models_that_exist(staff_client, rows):
    CachedFunctionFactory(name="other.module:extract_UserDetail", schema_version=rows["v2"])

    html = staff_client.get(CONFIRM).content.decode()

    choosers = html.split('data-testid="choosers"')[1]
    # Two functions share a short name: each is offered with its module.
    assert (
        f'<option value="{USER_DETAIL}">extract_UserDetail (extractor.extraction)</option>'
        in choosers
    )
    assert (
        '<option value="other.module:extract_UserDetail">extract_UserDetail (other.module)</option>'
        in choosers
    )
    assert f'<option value="{rows["v1"].pk}">UserDetail v1</option>' in choosers
    assert '<option value="gpt-4o-mini">gpt-4o-mini</option>' in choosers
    assert 'name="action" value="stale"' in choosers


def test_a_chosen_target_gets_the_count(staff_client, rows):
    response, _ = page(staff_client, {"action": "schema_version", "target": rows["v2"].pk})

    assert response.status_code == 200
    assert response.context["count"].value == 1
