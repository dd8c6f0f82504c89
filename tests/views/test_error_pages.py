"""Error pages explain themselves instead of Django's bare defaults."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_a_request_body_over_the_server_limit_is_a_readable_400(staff_client, settings, fake_llm):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = staff_client.post(
        reverse("extractor:extract"),
        {"text": "x" * 20_000, "schema": "UserDetail", "model": "gpt-4o-mini"},
    )

    assert response.status_code == 400
    assert "larger than the server accepts" in response.content.decode()
    assert fake_llm.count == 0


def test_a_user_without_staff_status_is_told_what_to_ask_for(plain_user_client):
    response = plain_user_client.get(reverse("extractor:entries"))

    assert response.status_code == 403
    assert "ask an administrator to give your account staff status" in response.content.decode()


def test_an_unknown_entry_is_a_readable_404(staff_client):
    response = staff_client.get(reverse("extractor:entry", args=[424242]))

    assert response.status_code == 404
    assert "There is nothing at this address" in response.content.decode()


def test_the_server_error_page_renders_without_inline_style():
    from django.template.loader import render_to_string

    html = render_to_string("500.html")

    assert "Something went wrong on the server" in html
    assert "style=" not in html  # the Content-Security-Policy refuses inline styles
    assert 'rel="stylesheet"' in html
