"""Failed requests say what happened: an htmx request without a session is sent to log
in (not given the login page as a fragment); CSRF failures and wrong methods get pages
in the site's layout instead of Django's bare defaults."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_an_htmx_request_without_a_session_is_redirected_to_log_in_from_its_page(client):
    response = client.post(
        reverse("extractor:extract"),
        {"text": "Ada, 36", "schema": "UserDetail", "model": "gpt-4o-mini"},
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/extract/"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/extract/"
    assert b"<form" not in response.content


def test_a_plain_request_without_a_session_still_redirects_to_log_in(client):
    response = client.get(reverse("extractor:entries"))

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/entries/"


def test_a_csrf_failure_is_a_page_in_the_site_layout_that_says_how_to_retry(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)

    response = client.post(reverse("extractor:replay-start", args=[1]))

    assert response.status_code == 403
    body = response.content.decode()
    assert 'class="topbar"' in body
    assert "security token" in body
    assert "reload the page" in body


def test_a_get_on_a_post_only_url_is_a_readable_405(staff_client):
    response = staff_client.get(reverse("extractor:replay-start", args=[1]))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    body = response.content.decode()
    assert 'class="topbar"' in body
    assert "only accepts POST" in body
