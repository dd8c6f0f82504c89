"""Secrets out of everything cachesite stores or logs.

Arguments, previews, outputs and error texts of recorded calls, backend URLs and
log lines all pass through here before a person can read them. Cache keys are
computed from the real arguments before any of this, so redaction changes what
is shown, never what is cached.

A pattern's whole match is replaced by MASK; a pattern with a group named
`secret` keeps the rest of its match as context ("sk-***", "postgres://u:***@h").
EXTRACTOR_REDACT_PATTERNS adds patterns to the built-in ones.

This module imports no models: the logging filter below is built while Django
configures logging, before the apps are loaded.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MASK = "***"


class Rule(NamedTuple):
    pattern: str
    # Lower-case strings one of which a match must contain: a quick `in` test
    # skips the regex scan of text that cannot match (most text, most rules).
    hints: tuple[str, ...] = ()


BUILTIN_RULES: tuple[Rule, ...] = (
    # OpenAI and Anthropic keys: sk-..., sk-proj-..., sk-ant-api03-...
    Rule(r"\bsk-(?P<secret>[A-Za-z0-9_\-]{16,})", ("sk-",)),
    # Stripe secret and restricted keys.
    Rule(r"\b[rs]k_(?:live|test)_(?P<secret>[A-Za-z0-9]{16,})", ("k_live_", "k_test_")),
    # AWS access key ids (long-lived AKIA..., temporary ASIA...).
    Rule(r"\b(?:AKIA|ASIA|ABIA|ACCA)(?P<secret>[A-Z0-9]{16})\b", ("akia", "asia", "abia", "acca")),
    # GitHub tokens (classic and fine-grained), GitLab personal tokens.
    Rule(r"\bgh[pousr]_(?P<secret>[A-Za-z0-9]{30,})", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    Rule(r"\bgithub_pat_(?P<secret>[A-Za-z0-9_]{30,})", ("github_pat_",)),
    Rule(r"\bglpat-(?P<secret>[A-Za-z0-9_\-]{20,})", ("glpat-",)),
    # Slack bot, user and app tokens.
    Rule(r"\bxox[abposr]-(?P<secret>[A-Za-z0-9\-]{10,})", ("xox",)),
    Rule(r"\bxapp-(?P<secret>[A-Za-z0-9\-]{10,})", ("xapp-",)),
    # Google API keys, Hugging Face tokens.
    Rule(r"\bAIza(?P<secret>[0-9A-Za-z_\-]{35})", ("aiza",)),
    Rule(r"\bhf_(?P<secret>[A-Za-z0-9]{30,})", ("hf_",)),
    # JSON Web Tokens: header.payload.signature, the first two base64url JSON.
    Rule(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", ("eyj",)),
    # PEM private keys.
    Rule(
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----",
        ("private key",),
    ),
    # Authorization headers, whatever the scheme.
    Rule(
        r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
        r"(?:basic|bearer|token|digest)?\s*(?P<secret>[^\s\"',;]+)",
        ("authorization",),
    ),
    # Bearer tokens in prose; a digit required so "bearer instruments" stays.
    Rule(
        r"(?i)\bbearer\s+(?P<secret>(?=[A-Za-z0-9._~+/\-]*\d)[A-Za-z0-9._~+/\-]{8,}=*)",
        ("bearer",),
    ),
    # A password in a URL: scheme://user:password@host (also redis://:password@host).
    Rule(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:(?P<secret>[^\s/]+)@", ("://",)),
    # Secrets in a query string: ?password=..., &token=...
    Rule(
        r"(?i)[?&](?:password|passwd|pwd|secret|token|access_token|api_?key|key|auth)"
        r"=(?P<secret>[^&\s#]+)",
        ("=",),
    ),
    # "password=...", "api_key: ...", '"client_secret": "..."' in text, code or JSON.
    Rule(
        r"(?i)\b(?:password|passwd|passphrase|secret|secret[_\-]?key|client[_\-]?secret|"
        r"api[_\-]?key|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token)"
        r"[\"']?\s*[:=]\s*[\"']?(?P<secret>[^\s\"',;&]+)",
        ("passw", "passphrase", "secret", "key", "token"),
    ),
)

# Argument and field names whose string values are secrets whatever their shape
# (`password="hunter2"`), compared with "_" and "-" removed, case ignored.
_SECRET_NAME_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "secretkey",
    "apikey",
    "accesskey",
    "privatekey",
    "token",
    "credential",
    "credentials",
    "authorization",
    "cookie",
)
_SECRET_NAMES = frozenset({"pwd", "auth"})


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled, or ImproperlyConfigured naming it and the fix."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ImproperlyConfigured(
            f"EXTRACTOR_REDACT_PATTERNS: {pattern!r} is not a valid regular expression "
            f"({exc}); fix or remove it."
        ) from None


@lru_cache(maxsize=8)
def _rules(extra: tuple[str, ...]) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    # Keyed on the configured patterns, so override_settings takes effect at once.
    rules = (*BUILTIN_RULES, *(Rule(pattern) for pattern in extra))
    return tuple((compile_pattern(rule.pattern), rule.hints) for rule in rules)


def _mask(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex or match.group("secret") is None:
        return MASK
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + MASK + whole[end - offset :]


def redact(text: str) -> str:
    """`text` with the configured API key, and anything shaped like a secret, masked."""
    if not text:
        return text
    key = settings.OPENAI_API_KEY
    if key and len(key) >= 8:
        text = text.replace(key, MASK)
    lowered = text.lower()
    for rule, hints in _rules(tuple(getattr(settings, "EXTRACTOR_REDACT_PATTERNS", ()))):
        if not hints or any(hint in lowered for hint in hints):
            text = rule.sub(_mask, text)
    return text


def is_secret_name(name: str) -> bool:
    """Whether an argument or field called `name` holds a secret (`api_key`, `password`)."""
    plain = name.lower().replace("_", "").replace("-", "")
    return plain in _SECRET_NAMES or plain.endswith(_SECRET_NAME_ENDINGS)


def redact_value(value: Any) -> Any:
    """A JSON-able value with every string redacted and secret-named strings masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            redact(name) if isinstance(name, str) else name: (
                MASK
                if isinstance(name, str) and isinstance(item, str) and item and is_secret_name(name)
                else redact_value(item)
            )
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


class RedactSecretsFilter(logging.Filter):
    """Logging filter: libraries log errors verbatim, and an exception's text can
    carry a call's arguments; neither a key nor a password may reach the logs."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not settings.configured:
            return True
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # Formatters print exc_text when set: fill it once, redacted.
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
