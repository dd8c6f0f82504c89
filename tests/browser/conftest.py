"""A real Chromium (Debian's, driven by Playwright) against pytest-django's live server.

Playwright's sync API runs an event loop in this thread, which makes Django's
async-safety check refuse ORM calls from the test; the tests only touch the
ORM between page actions, so that check is switched off here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "a-long-browser-password"

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM):
        # A missing browser must fail CI, never skip: the make target installs it.
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def no_js_page(browser: Browser) -> Iterator[Page]:
    """A page in its own context with JavaScript switched off: htmx never runs."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def staff_user(transactional_db):
    return get_user_model().objects.create_user(username="grace", password=PASSWORD, is_staff=True)


def log_in(page: Page, base_url: str) -> Page:
    """Log in as the staff user through the real login form (plain POST, no JS needed)."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    return page


@pytest.fixture
def staff_login(staff_user, live_server, page: Page):
    """Log in through the real login form as a staff user; return the page."""

    def login() -> Page:
        return log_in(page, live_server.url)

    return login
