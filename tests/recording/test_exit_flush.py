"""Nothing is lost on a normal exit: the buffer is written before the process ends."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import TEST_API_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from extractor.caching.events import get_recorder
    from extractor.extraction import extract

    for _ in range(51):
        extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    # The writer thread waits 60 s between batches: these are all still buffered.
    print("pending", get_recorder().pending())
    """
)


def _environment(data_dir: Path, base_url: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXTRACTOR_", "DATABASE_", "OPENAI_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="cachesite.settings",
        CACHESITE_DATA_DIR=str(data_dir),
        EXTRACTOR_RECORD_IN_BACKGROUND="1",
        EXTRACTOR_RECORD_FLUSH_SECONDS="60",
        OPENAI_API_KEY=TEST_API_KEY,
        OPENAI_BASE_URL=base_url,
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


def test_a_process_that_exits_normally_writes_every_buffered_call(tmp_path, fake_llm):
    data_dir = tmp_path / "data"

    finished = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=PROJECT_ROOT,
        env=_environment(data_dir, fake_llm.base_url),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert "pending 51" in finished.stdout  # nothing was written before exit
    assert fake_llm.count == 1
    with sqlite3.connect(data_dir / "cachesite.sqlite3") as database:
        outcomes = dict(
            database.execute("SELECT outcome, COUNT(*) FROM extractor_call GROUP BY outcome")
        )
        entries = database.execute("SELECT hit_count, status FROM extractor_entry").fetchall()
    assert outcomes == {"miss": 1, "hit": 50}
    assert entries == [(50, "live")]
