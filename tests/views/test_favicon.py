"""Every page names its icon, so browsers stop asking for a /favicon.ico that 404s."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_pages_link_an_svg_icon_that_is_served(client: Client):
    page = client.get(reverse("login"))  # base.html, without logging in
    link = re.search(
        r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', page.content.decode()
    )
    assert link, "base.html links no icon"

    icon = client.get(link.group(1))

    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)


def test_the_admin_pages_link_the_icon_too(admin_client: Client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert '<link rel="icon" type="image/svg+xml" href="/static/extractor/favicon.svg' in html
    assert "Site administration" in html  # still Django's own admin layout
