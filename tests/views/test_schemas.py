"""Schemas: versions with their entries, a field-level diff, invalidation from there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from extractor import extraction
from extractor.models import Entry, SchemaVersion
from tests.factories import EntryFactory, SchemaVersionFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:schemas")
PERSON = "extractor.schemas.UserDetail"

V1_SCHEMA = {
    "title": "UserDetail",
    "description": "A person.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "The name."},
        "age": {"type": "integer", "description": "Age in years."},
        "city": {"type": "string"},
    },
    "required": ["name", "age"],
}
V2_SCHEMA = {
    "title": "UserDetail",
    "description": "A person mentioned in the text.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "The full name as written."},
        "city": {"type": "string"},
        "email": {"type": "string", "description": "Work address."},
    },
    "required": ["name", "city"],
}


@pytest.fixture
def versions():
    v1 = SchemaVersionFactory(name=PERSON, number=1, json_schema=V1_SCHEMA)
    v2 = SchemaVersionFactory(name=PERSON, number=2, json_schema=V2_SCHEMA)
    EntryFactory.create_batch(2, schema_version=v1)
    EntryFactory(schema_version=v1, status=Entry.Status.INVALIDATED)
    EntryFactory(schema_version=v2)
    return v1, v2


def compare(client, a, b, name=PERSON, **extra):
    return client.get(URL, {"name": name, "a": a, "b": b}, **extra)


def test_each_version_shows_its_entry_counts_and_links(staff_client, versions):
    v1, v2 = versions

    response = staff_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="lead"' in html
    assert f'data-testid="counts-{v1.pk}">2 / 3<' in html
    assert f'data-testid="counts-{v2.pk}">1 / 1<' in html
    entries = reverse("extractor:entries")
    assert f"{entries}?schema_version={v1.pk}&amp;state=all" in html
    confirm = reverse("extractor:invalidate")
    assert f"{confirm}?action=schema_version&amp;target={v1.pk}" in html
    assert "Invalidate this version" in html
    assert v1.fingerprint[:12] in html
    assert "View JSON schema" in html
    assert "&quot;The full name as written.&quot;" in html  # the pretty JSON of v2


def test_registered_schemas_without_versions_are_listed(staff_client, versions):
    html = staff_client.get(URL).content.decode()

    assert "extractor.schemas.Character" in html
    assert "No versions yet" in html


def test_a_real_extraction_shows_up_as_v1(staff_client, fake_llm, flush_records):
    extraction.extract("Ada, a mathematician", "Character", "gpt-4o-mini")
    flush_records()
    version = SchemaVersion.objects.get(name="extractor.schemas.Character")

    html = staff_client.get(URL).content.decode()

    assert f'data-testid="counts-{version.pk}">1 / 1<' in html
    assert "&quot;Who the character is, in one or two sentences.&quot;" in html


def test_a_version_without_live_entries_offers_no_invalidation(staff_client):
    version = SchemaVersionFactory(name=PERSON, number=1)
    EntryFactory(schema_version=version, status=Entry.Status.INVALIDATED)

    html = staff_client.get(URL).content.decode()

    assert f"target={version.pk}" not in html
    assert "no live entries" in html


def test_the_diff_shows_fields_and_descriptions_added_removed_and_changed(staff_client, versions):
    v1, v2 = versions

    response = compare(staff_client, v1.pk, v2.pk)

    rows = {change.field: change for change in response.context["comparison"].changes}
    html = response.content.decode()
    assert response.status_code == 200
    assert set(rows) == {"(model)", "name", "age", "city", "email"}
    assert rows["age"].kind == "removed"
    assert rows["email"].kind == "added"
    assert "Work address." in rows["email"].detail
    assert rows["name"].kind == "changed"
    assert "description: 'The name.' → 'The full name as written.'" in rows["name"].detail
    assert rows["city"].detail == "now required"
    assert rows["(model)"].kind == "changed"
    assert '<tr class="removed">' in html
    assert '<tr class="added">' in html
    assert "The full name as written." in html
    assert "v1 → v2" in html


def test_the_compare_form_starts_on_the_last_two_versions(staff_client, versions):
    v1, v2 = versions

    html = staff_client.get(URL).content.decode()

    assert f'<option value="{v1.pk}" selected>v1</option>' in html
    assert f'<option value="{v2.pk}" selected>v2</option>' in html


def test_with_htmx_only_the_diff_region_comes_back(staff_client, versions):
    v1, v2 = versions

    response = compare(staff_client, v1.pk, v2.pk, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "<h1>" not in html
    assert '<tr class="added">' in html


def test_the_same_version_twice_has_no_differences(staff_client, versions):
    v1, _ = versions

    html = compare(staff_client, v1.pk, v1.pk).content.decode()

    assert "No field or description differs between v1 and v1." in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"a": "abc", "b": "1"}, "Version ids are whole numbers."),
        ({"a": "1"}, "Choose a version to compare with."),
        ({"name": PERSON}, "Choose a version to compare from."),
        ({"a": "99998", "b": "99999"}, "There is no schema version #99998 or #99999."),
    ],
)
def test_bad_compare_parameters_are_readable(staff_client, versions, params, message):
    full = staff_client.get(URL, params)
    fragment = staff_client.get(URL, params, headers={"HX-Request": "true"})

    assert full.status_code == 400
    assert message in full.content.decode()
    assert "<h1>Schemas</h1>" in full.content.decode()  # the rest of the page still there
    assert fragment.status_code == 200  # htmx swaps only 2xx answers
    assert message in fragment.content.decode()


def test_versions_of_different_schemas_are_not_compared(staff_client, versions):
    v1, _ = versions
    other = SchemaVersionFactory(name="extractor.schemas.Character", number=1)

    response = compare(staff_client, v1.pk, other.pk)

    assert response.status_code == 400
    assert "are versions of different schemas" in response.content.decode()


def test_a_version_of_another_schema_than_named_is_refused(staff_client, versions):
    v1, v2 = versions

    response = compare(staff_client, v1.pk, v2.pk, name="extractor.schemas.Character")

    assert "is not a version of extractor.schemas.Character" in response.content.decode()


def test_a_script_in_a_schema_description_is_escaped(staff_client):
    script = "<script>alert(1)</script>"
    v1 = SchemaVersionFactory(name=PERSON, number=1, json_schema=V1_SCHEMA)
    hostile = {
        **V1_SCHEMA,
        "description": script,
        "properties": {"name": {"type": "string", "description": script}},
    }
    v2 = SchemaVersionFactory(name=PERSON, number=2, json_schema=hostile)

    pages = [staff_client.get(URL), compare(staff_client, v1.pk, v2.pk)]

    for page in pages:
        assert script not in page.content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content.decode()


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(plain_user_client):
    assert plain_user_client.get(URL).status_code == 403


def test_the_page_is_read_only(staff_client):
    assert staff_client.post(URL).status_code == 405
