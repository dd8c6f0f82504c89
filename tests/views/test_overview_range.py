"""The Overview over a custom range of dates: applied, stated in words, or refused clearly."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import CallFactory, EntryFactory

pytestmark = pytest.mark.django_db

URL = reverse("extractor:overview")


def words(html: str) -> str:
    return " ".join(html.split('data-testid="window-words">', 1)[1].split("</p>", 1)[0].split())


@pytest.fixture
def paris(settings):
    settings.TIME_ZONE = "Europe/Paris"


def test_a_range_counts_its_whole_days_and_says_which(staff_client, paris):
    entry = EntryFactory()
    local = timezone.make_aware
    CallFactory(entry=entry, created_at=local(dt.datetime(2025, 3, 20, 23, 50)))
    CallFactory(entry=entry, created_at=local(dt.datetime(2025, 3, 21, 0, 10)))

    response = staff_client.get(URL, {"from": "2025-03-18", "to": "2025-03-20"})

    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["overview"].total.hits == 1  # 23:50 on the 20th, not the 21st
    assert words(html) == (
        "Showing Tue 18 Mar 2025 to Thu 20 Mar 2025, whole days, both included (Europe/Paris time)."
    )
    assert 'aria-current="true"' not in html  # no window link is the current one
    assert 'value="2025-03-18"' in html  # the form keeps the dates


def test_a_range_up_to_today_says_so(staff_client):
    today = timezone.localdate().isoformat()

    html = staff_client.get(URL, {"from": today, "to": today}).content.decode()

    assert "the whole day, up to now" in words(html)


def test_the_window_is_stated_in_words(staff_client):
    CallFactory(entry=EntryFactory())

    assert words(staff_client.get(URL).content.decode()).startswith("Showing the last 7 days: from")
    assert "the last 24 hours" in words(staff_client.get(URL, {"days": "1"}).content.decode())
    assert words(staff_client.get(URL, {"days": "all"}).content.decode()) == (
        "Showing all time: every call counted."
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2025-02-30", "to": "2025-03-01"}, "From: enter a date as YYYY-MM-DD"),
        ({"from": "yesterday", "to": "2025-03-01"}, "From: enter a date as YYYY-MM-DD"),
        ({"from": "2025-03-10", "to": "2025-03-01"}, "To is before From"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "at most three years (1096 days)"),
        ({"from": "2020-01-01", "to": "9999-12-31"}, "at most three years"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "From: pick a day from 2000-01-01 on."),
        ({"from": "9000-01-01", "to": "9000-01-02"}, "From is after today"),
        ({"from": "2025-03-01"}, "To: pick the last day of the range."),
        ({"from": "", "to": ""}, "From: pick the first day of the range."),
    ],
)
def test_bad_dates_are_explained_and_the_default_window_shown(staff_client, query, message):
    response = staff_client.get(URL, query)

    html = response.content.decode()
    assert response.status_code == 200
    errors = html.split('data-testid="range-errors"', 1)[1].split("</div>", 1)[0]
    assert "The dates were not applied" in errors
    assert message in errors
    assert response.context["overview"].days == 7
    assert words(html).startswith("Showing the last 7 days")


def test_three_years_to_the_day_are_allowed(staff_client):
    response = staff_client.get(URL, {"from": "2020-01-01", "to": "2022-12-31"})

    assert 'data-testid="range-errors"' not in response.content.decode()
    assert response.context["overview"].dates == (dt.date(2020, 1, 1), dt.date(2022, 12, 31))


def test_the_form_works_without_javascript_and_with_htmx(staff_client):
    html = staff_client.get(URL).content.decode()

    form = html.split('<form class="range-form"', 1)[1].split("</form>", 1)[0]
    assert f'method="get" action="{URL}" hx-get="{URL}"' in form
    assert 'type="date" name="from"' in form
    assert 'type="date" name="to"' in form
    # Inside the body htmx swaps and pushes into the address bar.
    body = html.split('id="overview-body"', 1)[1]
    assert body.index('hx-push-url="true"') < body.index('class="range-form"')


def test_htmx_gets_the_body_for_a_range(staff_client):
    response = staff_client.get(
        URL, {"from": "2025-03-18", "to": "2025-03-20"}, headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert "<html" not in html
    assert 'id="overview-body"' in html
    assert "Tue 18 Mar 2025 to Thu 20 Mar 2025" in words(html)


def test_the_window_links_leave_the_range(staff_client):
    html = staff_client.get(URL, {"from": "2025-03-18", "to": "2025-03-20"}).content.decode()

    assert 'href="?days=30"' in html
    assert "from=" not in html.split('aria-label="Time window"', 1)[1].split("</nav>", 1)[0]
