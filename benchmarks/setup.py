"""What every benchmark needs before it imports the project: Django on a fresh data dir."""

from __future__ import annotations

import os


def setup_django(data_dir: str, *, record_in_background: bool) -> None:
    """The project's settings on a fresh data directory, with its own SQLite file."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "cachesite.settings"
    os.environ["CACHESITE_DATA_DIR"] = data_dir
    os.environ["EXTRACTOR_RECORD_IN_BACKGROUND"] = "1" if record_in_background else "0"
    os.environ.pop("DATABASE_URL", None)  # always a fresh SQLite file: the counts are ours

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
