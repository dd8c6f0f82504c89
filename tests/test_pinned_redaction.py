"""The logging filter configured in settings keeps secrets out of log lines and
tracebacks (issue 11: nothing exercised it)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from tests.conftest import TEST_API_KEY


@pytest.fixture
def console() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler carries the settings' filter, formatted the settings' way."""
    config = settings.LOGGING
    handler_config = config["handlers"]["console"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
    for name in handler_config["filters"]:
        handler.addFilter(import_string(config["filters"][name]["()"])())
    logger = logging.getLogger("extractor.tests.pinned_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_provider_error_logged_with_a_key_shows_the_key_masked(console):
    logger, stream = console

    logger.error("the provider said: %s", f"Incorrect API key provided: {TEST_API_KEY}")

    line = stream.getvalue()
    assert "Incorrect API key provided: sk-***" in line
    assert TEST_API_KEY not in line
    assert TEST_API_KEY[3:] not in line


def test_a_traceback_carrying_a_password_is_logged_masked(console):
    logger, stream = console
    url = "redis://:hunter2-secret-password@cache.internal:6379/0"

    try:
        raise ConnectionError(f"Error connecting to {url}")
    except ConnectionError:
        logger.exception("could not reach the cache")

    text = stream.getvalue()
    assert "could not reach the cache" in text
    assert "ConnectionError: Error connecting to redis://:***@cache.internal" in text
    assert "hunter2-secret-password" not in text
