"""EXTRACTOR_REDACT_PATTERNS as read from the environment, and secrets kept out of logs."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from cachesite.env import env_patterns

GITHUB_TOKEN = "ghp_" + "a1B2" * 9
DATABASE_PASSWORD = "Hunter2-db-pw"


def test_patterns_are_comma_separated_and_a_comma_inside_a_quantifier_stays(monkeypatch):
    monkeypatch.setenv("EXTRACTOR_REDACT_PATTERNS", r"ACME-\d{6}, [A-Z]{16,},(?:x|y){2,3}")

    assert env_patterns("EXTRACTOR_REDACT_PATTERNS") == (
        r"ACME-\d{6}",
        "[A-Z]{16,}",
        "(?:x|y){2,3}",
    )


def test_patterns_are_one_a_line_when_the_value_has_several_lines(monkeypatch):
    monkeypatch.setenv("EXTRACTOR_REDACT_PATTERNS", "ACME-[0-9]+\n\n  a,b  \n")

    assert env_patterns("EXTRACTOR_REDACT_PATTERNS") == ("ACME-[0-9]+", "a,b")


def test_an_unset_pattern_list_adds_nothing(monkeypatch):
    monkeypatch.delenv("EXTRACTOR_REDACT_PATTERNS", raising=False)

    assert env_patterns("EXTRACTOR_REDACT_PATTERNS") == ()


def test_an_invalid_pattern_is_a_configuration_error_naming_it(monkeypatch):
    monkeypatch.setenv("EXTRACTOR_REDACT_PATTERNS", r"ACME-\d{6},token-(\w+")

    with pytest.raises(ImproperlyConfigured) as raised:
        env_patterns("EXTRACTOR_REDACT_PATTERNS")

    message = str(raised.value)
    assert "EXTRACTOR_REDACT_PATTERNS" in message
    assert r"'token-(\\w+'" in message
    assert "fix or remove it" in message


def test_the_configured_log_filter_masks_secrets_in_messages_and_tracebacks(settings):
    """The filter the console handler uses, as settings.LOGGING names it."""
    log_filter = import_string(settings.LOGGING["filters"]["redact_secrets"]["()"])()
    try:
        raise ConnectionError(f"could not reach postgres://app:{DATABASE_PASSWORD}@db/app")
    except ConnectionError as exc:
        record = logging.LogRecord(
            "extractor.recording",
            logging.ERROR,
            __file__,
            1,
            "call with %s failed",
            (GITHUB_TOKEN,),
            (type(exc), exc, exc.__traceback__),
        )

    assert log_filter.filter(record)
    text = logging.Formatter().format(record)

    assert "call with ghp_*** failed" in text
    assert "postgres://app:***@db/app" in text
    assert GITHUB_TOKEN not in text
    assert DATABASE_PASSWORD not in text
