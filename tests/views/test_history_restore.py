"""Pages that answer htmx with a fragment: a history restore gets the whole page, and every
answer says it varies on HX-Request (issue 8, defect 4)."""

from __future__ import annotations

import pytest

# Every page whose view can answer with a fragment of itself.
FRAGMENT_PAGES = ["/", "/entries/", "/calls/", "/invalidations/", "/schemas/"]
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


@pytest.mark.parametrize("url", FRAGMENT_PAGES)
def test_a_history_restore_gets_the_whole_page_with_its_header(staff_client, url):
    response = staff_client.get(url, headers=RESTORE)

    html = response.content.decode()
    assert response.status_code == 200
    # htmx puts a restore answer into <body>: without the header the page loses it.
    assert '<header class="topbar">' in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("url", FRAGMENT_PAGES)
@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}], ids=["plain", "htmx"])
def test_every_answer_varies_on_hx_request(staff_client, url, headers):
    response = staff_client.get(url, headers=headers)

    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("url", FRAGMENT_PAGES)
def test_a_plain_htmx_request_still_gets_only_the_fragment(staff_client, url):
    html = staff_client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert '<header class="topbar">' not in html
