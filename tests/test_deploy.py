"""Production serving: `manage.py check --deploy` is clean with the documented environment,
the development secret key is refused, every response carries the CSP and
Permissions-Policy headers, and gunicorn (`make serve`'s config) serves the dashboard and
its static files, then stops on SIGTERM with the buffered call records written.

The subprocesses run with DEBUG off on a SQLite file of their own, never on the suite's
database (not even when DATABASE_URL points the suite at PostgreSQL).
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from cachesite.env import DEVELOPMENT_SECRET_KEY, refuse_development_secret_key
from extractor.models import Call
from tests.conftest import TEST_API_KEY
from tests.factories import CallFactory, EntryFactory, InvalidationFactory

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """README's production environment ("Deploying for a team"), on a private data dir."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXTRACTOR_", "DATABASE_", "DJANGO_", "CACHESITE_", "GUNICORN_"))
        and name not in {"WEB_CONCURRENCY", "OPENAI_API_KEY", "OPENAI_BASE_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="cachesite.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="cache.example.com,127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://cache.example.com",
        CACHESITE_DATA_DIR=str(tmp_path / "data"),
        **extra,
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    finished = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path),
    )

    assert finished.returncode == 0, finished.stderr
    assert "no issues" in finished.stdout


@pytest.mark.parametrize("secret_key", ["", DEVELOPMENT_SECRET_KEY])
def test_a_production_start_with_the_development_key_or_none_is_refused(tmp_path, secret_key):
    env = production_env(tmp_path)
    env["DJANGO_SECRET_KEY"] = secret_key

    finished = run([sys.executable, "-c", "import cachesite.wsgi"], env)

    assert finished.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in finished.stderr
    assert "secrets.token_urlsafe" in finished.stderr  # how to make one


def test_gunicorn_refuses_the_development_key_before_starting_a_worker(tmp_path):
    env = production_env(tmp_path, GUNICORN_BIND="127.0.0.1:0")
    env["DJANGO_SECRET_KEY"] = DEVELOPMENT_SECRET_KEY

    finished = run([str(GUNICORN), "--config", "cachesite/gunicorn.conf.py", "cachesite.wsgi"], env)

    assert finished.returncode != 0
    assert "refusing to serve with a key anyone can read" in finished.stderr
    assert "Booting worker" not in finished.stderr


@pytest.mark.parametrize(
    ("debug", "secret_key"),
    [(True, DEVELOPMENT_SECRET_KEY), (True, ""), (False, "a-real-key-" + "x" * 50)],
)
def test_development_or_a_real_key_starts(debug, secret_key):
    refuse_development_secret_key(debug=debug, secret_key=secret_key)


def test_the_refusal_names_the_variable_and_the_way_out():
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_SECRET_KEY.*DJANGO_DEBUG=1"):
        refuse_development_secret_key(debug=False, secret_key=DEVELOPMENT_SECRET_KEY)


def test_every_response_carries_the_csp_and_permissions_policy(client):
    for path in ("/login/", "/no-such-page/"):
        response = client.get(path)

        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "camera=()" in response.headers["Permissions-Policy"]


# What the policy refuses: a script without src, a <style> element, a style attribute,
# an inline event handler, a javascript: URL, htmx's hx-on (eval).
INLINE = re.compile(
    r"<script(?![^>]*\ssrc=)[^>]*>|<style[\s>]|\sstyle=|\s(?:hx-)?on[a-z:-]*=|javascript:",
    re.IGNORECASE,
)


@pytest.mark.django_db
def test_the_pages_need_no_inline_script_or_style(admin_client):
    entry = EntryFactory()
    CallFactory.create_batch(2, entry=entry)
    CallFactory(entry=entry, outcome=Call.Outcome.MISS, latency_ms=850.0)
    invalidation = InvalidationFactory()
    pages = [
        reverse("extractor:overview"),
        reverse("extractor:extract"),
        reverse("extractor:entries"),
        reverse("extractor:entry", args=[entry.pk]),
        reverse("extractor:schemas"),
        reverse("extractor:calls"),
        reverse("extractor:invalidations"),
        reverse("extractor:invalidation", args=[invalidation.pk]),
        f"{reverse('extractor:invalidate')}?action=entry&target={entry.pk}",
    ]

    for path in pages:
        response = admin_client.get(path)

        assert response.status_code == 200, path
        assert not INLINE.findall(response.content.decode()), path


# A WSGI app around the site's own, so a request can make a recorded call (against
# the fake provider) without logging in; everything else is the site.
RECORDING_APP = """
from cachesite.wsgi import application as site


def application(environ, start_response):
    if environ["PATH_INFO"] == "/record/":
        from extractor.extraction import extract

        for _ in range(3):
            extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"recorded"]
    return site(environ, start_response)
"""


# `make serve`'s collectstatic and migrate, in one process (one Django start, not two).
PREPARE = """
import django
from django.core.management import call_command

django.setup()
call_command("collectstatic", interactive=False, verbosity=0)
call_command("migrate", interactive=False, verbosity=0)
"""


def get(port: int, path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": "127.0.0.1", **headers})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_gunicorn_serves_the_site_and_its_static_files_then_stops_on_sigterm(tmp_path, fake_llm):
    (tmp_path / "recording_app.py").write_text(textwrap.dedent(RECORDING_APP))
    env = production_env(
        tmp_path,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)]),
        GUNICORN_BIND="127.0.0.1:0",
        WEB_CONCURRENCY="1",
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_BASE_URL=fake_llm.base_url,
        EXTRACTOR_LLM_MAX_RETRIES="0",
        # The writer waits a minute between batches: only the exit path can write them.
        EXTRACTOR_RECORD_FLUSH_SECONDS="60",
    )
    prepared = run([sys.executable, "-c", PREPARE], env)  # what `make serve` runs first
    assert prepared.returncode == 0, prepared.stderr

    server = subprocess.Popen(
        [str(GUNICORN), "--config", "cachesite/gunicorn.conf.py", "recording_app"],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    try:
        assert server.stderr is not None
        port = 0
        while not port:
            line = server.stderr.readline()
            assert line, "gunicorn stopped before listening:\n" + "".join(log)
            log.append(line)
            if found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = int(found[1])

        # Plain http is sent to https, with the headers on the redirect too.
        redirect, _ = get(port, "/login/")
        assert redirect.status == 301
        assert redirect.headers["Location"] == "https://127.0.0.1/login/"
        assert "Content-Security-Policy" in redirect.headers

        # As the proxy in front would ask (gunicorn trusts X-Forwarded-Proto from 127.0.0.1).
        page, body = get(port, "/login/", **{"X-Forwarded-Proto": "https"})
        assert page.status == 200
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert "camera=()" in page.headers["Permissions-Policy"]
        assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert "Secure" in page.headers["Set-Cookie"]
        stylesheet = re.search(r'href="(/static/extractor/site\.[0-9a-f]{12}\.css)"', body.decode())
        assert stylesheet, "the stylesheet's name carries its hash (manifest storage)"

        static, css = get(
            port, stylesheet[1], **{"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"}
        )
        assert static.status == 200
        assert "immutable" in static.headers["Cache-Control"]
        assert static.headers["Content-Encoding"] == "gzip"
        assert b".htmx-indicator" in gzip.decompress(css)
        assert "Content-Security-Policy" in static.headers

        recorded, _ = get(port, "/record/", **{"X-Forwarded-Proto": "https"})
        assert recorded.status == 200

        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rest = server.communicate(timeout=20)[1]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log.append(rest)

    assert server.returncode == 0, "".join(log)
    assert time.monotonic() - started < 10
    assert "Exception during worker exit" not in rest
    with sqlite3.connect(tmp_path / "data" / "cachesite.sqlite3") as database:
        (calls,) = database.execute("SELECT count(*) FROM extractor_call").fetchone()
    assert calls == 3, "".join(log)
