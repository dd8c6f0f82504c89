"""Django settings for cachesite.

Every setting comes from an environment variable with a default that runs the
dashboard locally on SQLite and diskcache. README.md lists them all.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF

from cachesite.env import (
    DEVELOPMENT_SECRET_KEY,
    env_bool,
    env_float,
    env_int,
    env_json,
    env_list,
    env_patterns,
    env_str,
)

# Lets ModelAdmin[Model] and friends be subscripted at runtime, as mypy sees them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CACHESITE_DATA_DIR", str(BASE_DIR / ".data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# The fallback key is only good for a laptop: serving with it and DEBUG off is refused
# (cachesite/wsgi.py), so production must set a real one.
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# What `manage.py check --deploy` asks for. With DEBUG off each defaults to the safe
# production value (the site is served over HTTPS only); with DEBUG on, to plain http on
# 127.0.0.1. README "Deploying for a team" lists them.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
# Only behind a proxy that sets X-Forwarded-Proto itself (and strips the client's):
# trusted from anyone else, the header would let a client claim https.
if env_bool("CACHESITE_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Every response. The pages load only their own scripts and styles (htmx is vendored,
# no inline script or style), so nothing needs 'unsafe-inline' or 'unsafe-eval'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# The dashboard uses none of these browser features; nothing it embeds may either.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "extractor",
]

MIDDLEWARE = [
    # Outermost, so every response gets both headers: static files (WhiteNoise) and
    # SecurityMiddleware's own redirects to https too.
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "extractor.views.errors.MethodNotAllowedPageMiddleware",
]
CSRF_FAILURE_VIEW = "extractor.views.errors.csrf_failure"

ROOT_URLCONF = "cachesite.urls"
WSGI_APPLICATION = "cachesite.wsgi.application"
ASGI_APPLICATION = "cachesite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "extractor.context_processors.cache_health",
                "extractor.context_processors.display_names",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'cachesite.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the recorder's writer thread and page reads run side by side;
    # IMMEDIATE transactions fail fast on lock contention instead of deadlocking.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background jobs (invalidations) through django-tasks: queued in the database and run by
# `manage.py db_worker` (`make run` starts one). TASKS_BACKEND=
# django_tasks.backends.immediate.ImmediateBackend runs them inside the request instead.
TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "extractor:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Development serves straight from the app's static folders (no collectstatic step to
# forget); production (`make serve` runs collectstatic) serves compressed files with a
# content hash in their names, cached by browsers for good.
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "extractor.redaction.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "extractor": {"level": env_str("EXTRACTOR_LOG_LEVEL", "INFO")},
    },
}

# --- cachesite ---------------------------------------------------------------

# Where cached values live: memory://?maxsize=N, disk:///path or redis://host:port/db.
EXTRACTOR_CACHE_URL = env_str("EXTRACTOR_CACHE_URL", f"disk://{DATA_DIR / 'cache'}")
# Seconds a cached value lives; unset means until evicted or invalidated.
EXTRACTOR_CACHE_TTL = env_float("EXTRACTOR_CACHE_TTL", None)
# Off: every decorated call goes straight to the LLM (recorded as "bypass").
EXTRACTOR_CACHE_ENABLED = env_bool("EXTRACTOR_CACHE_ENABLED", True)
# Calls are buffered in memory and written in batches at most this often.
EXTRACTOR_RECORD_FLUSH_SECONDS = env_float("EXTRACTOR_RECORD_FLUSH_SECONDS", 1.0)
# Upper bound on buffered call records if the database is unreachable.
EXTRACTOR_RECORD_BUFFER_MAX = env_int("EXTRACTOR_RECORD_BUFFER_MAX", 100_000)
# Hits that keep their own row in the call log, per second and process; the rest
# are counted (exactly) without one. -1 itemises every hit.
EXTRACTOR_ITEMISED_HITS_PER_SECOND = env_int("EXTRACTOR_ITEMISED_HITS_PER_SECOND", 100)
# Off: records wait for an explicit flush (tests and one-shot scripts).
EXTRACTOR_RECORD_IN_BACKGROUND = env_bool("EXTRACTOR_RECORD_IN_BACKGROUND", True)
# On: SIGTERM and SIGINT write the buffered call records before the process goes on
# to stop (off: leave both signals to the embedding app).
EXTRACTOR_RECORD_SIGNAL_FLUSH = env_bool("EXTRACTOR_RECORD_SIGNAL_FLUSH", True)
# Longest wait for that last write, at exit or on a signal; then the rest is logged.
EXTRACTOR_RECORD_EXIT_SECONDS = env_float("EXTRACTOR_RECORD_EXIT_SECONDS", 5.0)
# Days call rows and invalidated or replaced entries are kept (`manage.py prune`);
# the counters are kept for good. 0 keeps everything.
EXTRACTOR_CALL_RETENTION_DAYS = env_int("EXTRACTOR_CALL_RETENTION_DAYS", 30)
# Regexes of secrets to mask in stored arguments, previews, outputs, errors and logs,
# added to the built-in key shapes (extractor/redaction.py); comma- or newline-separated.
EXTRACTOR_REDACT_PATTERNS = env_patterns("EXTRACTOR_REDACT_PATTERNS")

OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL") or None
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL") or None
EXTRACTOR_LLM_TIMEOUT = env_float("EXTRACTOR_LLM_TIMEOUT", 60.0)
# Seconds a miss's cross-process lock (Redis, diskcache) lasts: a process that
# dies computing blocks the others at most this long; by default the LLM timeout.
EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS = env_float(
    "EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS", EXTRACTOR_LLM_TIMEOUT
)
EXTRACTOR_LLM_MAX_RETRIES = env_int("EXTRACTOR_LLM_MAX_RETRIES", 2)
# Models as "provider/model" (openai or anthropic); a bare name is an OpenAI-compatible one.
EXTRACTOR_DEFAULT_MODEL = env_str("EXTRACTOR_DEFAULT_MODEL", "openai/gpt-4o-mini")
EXTRACTOR_MODELS = env_list(
    "EXTRACTOR_MODELS",
    [
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "openai/gpt-4.1-mini",
        "anthropic/claude-haiku-4-5",
        "anthropic/claude-sonnet-4-5",
    ],
)
# Extra response models for the registry, as dotted paths.
EXTRACTOR_SCHEMAS = env_list("EXTRACTOR_SCHEMAS", [])
# Longest text the extraction form accepts, in bytes (UTF-8).
EXTRACTOR_MAX_TEXT_BYTES = env_int("EXTRACTOR_MAX_TEXT_BYTES", 100_000)
# Largest context document (pasted or uploaded) the extraction form accepts, in bytes.
EXTRACTOR_MAX_DOCUMENT_BYTES = env_int("EXTRACTOR_MAX_DOCUMENT_BYTES", 2_000_000)
# USD per million tokens for the savings estimates: (input, cached input, 5-minute
# cache write, 1-hour cache write, output). Standard-tier list prices from the
# providers' pricing pages, checked 2026-11-30 (no batch or volume discounts).
# OpenAI bills no cache writes (its caching is automatic): writes at the input price.
# A dated snapshot ("claude-haiku-4-5-20251001", "gpt-4o-2024-08-06") takes its
# model's price; "provider/model" is priced by the model part. A 3-number entry
# (input, cached input, output) is accepted, its writes at 1.25x and 2x input.
# EXTRACTOR_PRICES='{"my-model": [0.5, 0.05, 0.625, 1.0, 1.5]}' adds or overrides models.
EXTRACTOR_PRICES = {
    "gpt-4o": (2.50, 1.25, 2.50, 2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.15, 0.15, 0.60),
    "gpt-4.1": (2.00, 0.50, 2.00, 2.00, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 0.40, 0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.10, 0.10, 0.40),
    "o4-mini": (1.10, 0.275, 1.10, 1.10, 4.40),
    "claude-haiku-4-5": (1.00, 0.10, 1.25, 2.00, 5.00),
    "claude-sonnet-4-5": (3.00, 0.30, 3.75, 6.00, 15.00),
    "claude-sonnet-4-0": (3.00, 0.30, 3.75, 6.00, 15.00),
    "claude-opus-4-1": (15.00, 1.50, 18.75, 30.00, 75.00),
    "claude-3-5-haiku": (0.80, 0.08, 1.00, 1.60, 4.00),
    **env_json("EXTRACTOR_PRICES", {}),
}
# Larger bodies are refused by Django before the form sees them; leave room for the text.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(
    2_621_440, 4 * (EXTRACTOR_MAX_TEXT_BYTES + EXTRACTOR_MAX_DOCUMENT_BYTES)
)
