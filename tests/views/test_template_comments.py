"""No template comment leaks onto a page (Django's {# #} ends at the line's end)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import CallFactory

pytestmark = pytest.mark.django_db

PAGES = ["overview", "extract", "entries", "calls", "schemas", "invalidations"]


@pytest.mark.parametrize("name", PAGES)
def test_no_template_comment_reaches_the_page(staff_client, name):
    CallFactory()

    html = staff_client.get(reverse(f"extractor:{name}")).content.decode()

    assert "{#" not in html
    assert "#}" not in html
    assert "{% comment" not in html
