"""A cache directory that cannot be opened does not stop the site: it starts, calls go
to the LLM, the log says so once and every page says what is wrong and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGES = ["overview", "extract", "entries", "schemas", "calls", "invalidations"]
BANNER = 'data-testid="cache-problem"'


def unopenable(tmp_path: Path) -> Path:
    """A directory nobody can create, even root: its parent is a regular file."""
    parent = tmp_path / "file.txt"
    parent.write_text("not a directory")
    return parent / "cache"


@pytest.fixture
def broken_cache(settings, tmp_path) -> Path:
    directory = unopenable(tmp_path)
    settings.EXTRACTOR_CACHE_URL = f"disk://{directory}"
    return directory


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_the_cache_directory_cannot_be_opened_and_the_fix(
    staff_client, broken_cache, page
):
    html = staff_client.get(reverse(f"extractor:{page}")).content.decode()

    assert BANNER in html
    assert f"The cache directory {broken_cache} cannot be opened" in html
    assert "EXTRACTOR_CACHE_URL" in html


def test_extraction_goes_to_the_llm_while_the_cache_directory_is_broken(
    staff_client, broken_cache, fake_llm
):
    for _attempt in range(2):
        response = staff_client.post(
            reverse("extractor:extract"),
            {"text": "Jason is 25 years old", "schema": "UserDetail", "model": "gpt-4o-mini"},
        )
        assert response.status_code == 200
        assert 'data-testid="outcome">Miss<' in response.content.decode()

    assert fake_llm.count == 2
    assert BANNER in response.content.decode()


def test_the_banner_masks_a_secret_in_the_path_it_quotes(staff_client, settings, tmp_path):
    secret = "sk-banner0123456789abcdefXYZ"  # a key pasted into the cache path by mistake
    (tmp_path / secret).mkdir()
    settings.EXTRACTOR_CACHE_URL = f"disk://{unopenable(tmp_path / secret)}"

    html = staff_client.get(reverse("extractor:overview")).content.decode()

    assert BANNER in html
    assert "sk-***" in html
    assert secret not in html


def test_no_banner_while_the_cache_works(staff_client):
    assert BANNER not in staff_client.get(reverse("extractor:overview")).content.decode()


def test_the_login_page_does_not_show_the_cache_problem_to_strangers(client, broken_cache):
    html = client.get(reverse("login")).content.decode()

    assert BANNER not in html
    assert str(broken_cache) not in html


def test_manage_py_starts_with_an_unopenable_cache_directory_and_logs_it_once(tmp_path):
    directory = unopenable(tmp_path)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXTRACTOR_", "DATABASE_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="cachesite.settings",
        CACHESITE_DATA_DIR=str(tmp_path / "data"),
        EXTRACTOR_CACHE_URL=f"disk://{directory}",
    )

    finished = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stderr.count("cannot be opened") == 1
    assert "EXTRACTOR_CACHE_URL" in finished.stderr
