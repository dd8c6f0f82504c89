"""While an extraction runs, its fields are disabled: an edit made then would be
dropped when the answer replaces the panel."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_htmx_disables_every_field_of_the_form_during_the_request(staff_client):
    html = staff_client.get(reverse("extractor:extract")).content.decode()

    form = re.search(r"<form [^>]*hx-post=[^>]*>", html)
    assert form, "the Extract form does not post through htmx"
    form_id = re.search(r'\bid="([^"]+)"', form.group(0))
    disabled = re.search(r'\bhx-disabled-elt="([^"]+)"', form.group(0))
    assert form_id
    assert disabled
    # Each field kind of the form (text, schema and model, the refresh box, the
    # button), within this form.
    selectors = {part.strip() for part in disabled.group(1).split(",")}
    kinds = ("textarea", "select", "input", "button")
    assert selectors == {f"#{form_id.group(1)} {tag}" for tag in kinds}
    assert "<textarea" in html
    assert "<select" in html
    assert 'type="checkbox" name="refresh"' in html
