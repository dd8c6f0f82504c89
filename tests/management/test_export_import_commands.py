"""manage.py export_entries / import_entries: a round trip that warms an empty backend."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.management import CommandError, call_command

from extractor import extraction
from extractor.caching.backends import backend_from_url
from extractor.models import CachedFunction, Call, CallRollup, Entry, SchemaVersion

pytestmark = pytest.mark.django_db

TEXTS = ["Jason is 25", "Ada is 36", "Grace is 85"]
ROW_FIELDS = (
    "key",
    "function",
    "code_fingerprint",
    "input_fingerprint",
    "arguments",
    "output",
    "llm_model",
    "prompt_tokens",
    "completion_tokens",
    "created_at",
    "schema_version__fingerprint",
)


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def rows() -> list[tuple]:
    return sorted(Entry.objects.values_list(*ROW_FIELDS))


@pytest.fixture
def exported(fake_llm, flush_records, settings, tmp_path) -> dict:
    """Three extractions cached on disk, exported; then a database without them."""
    for source in TEXTS:
        extraction.extract(source, "UserDetail", "gpt-4o-mini")
    flush_records()
    source_backend = backend_from_url(settings.EXTRACTOR_CACHE_URL)
    keys = list(Entry.objects.values_list("key", flat=True))
    before = {
        "path": tmp_path / "entries.jsonl",
        "rows": rows(),
        "values": {key: text(source_backend.get(key)) for key in keys},
    }
    out, _ = run("export_entries", str(before["path"]))
    assert "Exported 3 entries" in out
    for model in (Call, CallRollup, Entry, CachedFunction, SchemaVersion):
        model.objects.all().delete()
    return before


@pytest.mark.parametrize("target", ["redis", "disk"])
def test_import_reproduces_every_entry_and_the_next_calls_are_hits(
    exported, target, fake_llm, flush_records, settings, tmp_path, request
):
    url = (
        request.getfixturevalue("redis_cache_url")
        if target == "redis"
        else f"disk://{tmp_path / 'other'}"
    )

    out, err = run("import_entries", str(exported["path"]), "--to", url)

    assert "Imported 3 entries with 1 new schema versions and 1 new functions." in out, err
    assert rows() == exported["rows"]
    settings.EXTRACTOR_CACHE_URL = url  # the functions now read the imported backend
    target_backend = backend_from_url(url)
    assert {key: text(target_backend.get(key)) for key in exported["values"]} == (
        exported["values"]
    )
    requests = fake_llm.count
    for source in TEXTS:
        extraction.extract(source, "UserDetail", "gpt-4o-mini")
    flush_records()
    assert fake_llm.count == requests
    assert set(Call.objects.values_list("outcome", flat=True)) == {"hit"}
    target_backend.clear()


def test_a_second_import_keeps_what_is_already_live(exported, tmp_path):
    url = f"disk://{tmp_path / 'other'}"
    run("import_entries", str(exported["path"]), "--to", url)

    out, _ = run("import_entries", str(exported["path"]), "--to", url)

    assert "Imported 0 entries; skipped 3 already live here." in out
    assert Entry.objects.count() == 3


def test_a_corrupt_line_is_reported_by_number_and_skipped_or_stops_with_strict(exported, tmp_path):
    lines = exported["path"].read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    entry_line = next(n for n, line in enumerate(lines) if line.startswith(b'{"entry"'))
    record = orjson.loads(lines[entry_line])
    record["value"] = "not an envelope"
    lines[entry_line] = orjson.dumps(record) + b"\n"
    lines.insert(2, b"{truncated\n")
    broken.write_bytes(b"".join(lines))
    url = f"disk://{tmp_path / 'other'}"

    with pytest.raises(CommandError, match=r"line 3: .*The lines before it were imported"):
        run("import_entries", str(broken), "--to", url, "--strict")
    out, err = run("import_entries", str(broken), "--to", url)

    assert "line 3: " in err
    assert f"line {entry_line + 2}: the value is not an envelope" in err
    assert "Imported 2 entries" in out
    assert "skipped 2 bad lines" in out


def test_a_dry_run_checks_everything_and_writes_nothing(exported, tmp_path):
    url = f"disk://{tmp_path / 'other'}"

    out, _ = run("import_entries", str(exported["path"]), "--to", url, "--dry-run")

    assert "Would import 3 entries" in out
    assert "(dry run: nothing was written)" in out
    assert not Entry.objects.exists()
    assert not SchemaVersion.objects.exists()
    assert not any(backend_from_url(url).scan_keys())


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text('{"id": 1}\n')

    with pytest.raises(CommandError, match="not a cachesite entries export header"):
        run("import_entries", str(path), "--to", f"disk://{tmp_path / 'other'}")
    with pytest.raises(CommandError, match="exists; pass --force"):
        run("export_entries", str(path))
