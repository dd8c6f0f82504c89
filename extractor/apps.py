from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class ExtractorConfig(AppConfig):
    name = "extractor"
    verbose_name = "Extraction cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from extractor.recording import install_recorder

        configure_cache_from_settings()
        install_recorder()
        setting_changed.connect(_on_setting_changed)


def configure_cache_from_settings() -> None:
    """Point the library's defaults at the settings.

    A URL that cannot work (unknown scheme, bad option) stops startup: that is a
    typo to fix now. A cache directory that is missing, read-only or unopenable
    does not: the backend logs one error, every call goes to the LLM (recorded
    as backend_error) and each page shows a banner with the fix, so the
    dashboard stays usable to diagnose it.
    """
    from django.conf import settings

    from extractor.caching import configure
    from extractor.caching.backends import backend_from_url
    from extractor.caching.errors import CacheConfigurationError

    url = settings.EXTRACTOR_CACHE_URL
    try:
        backend_from_url(url).close()
    except CacheConfigurationError as exc:
        raise ImproperlyConfigured(f"EXTRACTOR_CACHE_URL: {exc}") from exc
    try:
        configure(
            url=url,
            ttl=settings.EXTRACTOR_CACHE_TTL,
            enabled=settings.EXTRACTOR_CACHE_ENABLED,
            single_flight_lease=settings.EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS,
        )
    except CacheConfigurationError as exc:
        raise ImproperlyConfigured(f"EXTRACTOR_SINGLE_FLIGHT_LEASE_SECONDS: {exc}") from exc


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting.startswith(("EXTRACTOR_CACHE_", "EXTRACTOR_SINGLE_FLIGHT_")):
        configure_cache_from_settings()
    elif setting.startswith("EXTRACTOR_RECORD_"):
        from extractor.recording import install_recorder

        install_recorder()
