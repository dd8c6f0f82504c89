"""Ids typed into a URL: whatever the text, a readable 400, never a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

TOO_BIG = str(2**63)  # one past the largest id a 64-bit column holds


@pytest.mark.parametrize(
    "params",
    [
        {"a": TOO_BIG, "b": "1"},
        {"a": "1", "b": TOO_BIG},
    ],
    ids=["a", "b"],
)
def test_a_compared_version_id_past_the_column_range_is_a_form_error(staff_client, params):
    response = staff_client.get(reverse("extractor:schemas"), params)

    assert response.status_code == 400
    assert "Version ids are whole numbers" in response.content.decode()


@pytest.mark.parametrize("action", ["entry", "schema_version"])
@pytest.mark.parametrize("target", ["²", "٣", TOO_BIG], ids=["superscript", "arabic", "too-big"])
def test_an_id_target_that_is_not_an_ascii_id_in_range_is_a_form_error(
    staff_client, action, target
):
    response = staff_client.get(
        reverse("extractor:invalidate"), {"action": action, "target": target}
    )

    assert response.status_code == 400
    assert "is not a" in response.content.decode()  # "an entry id", "a schema version id"
