"""Values PostgreSQL refuses are cleaned before the insert: the batch is written whole.

A NUL byte (in text or inside JSON), a string longer than its column: one of
them used to make the whole batch be rewritten row by row, and that record was
lost. Run on both databases; SQLite takes such values, and is given the same
cleaned rows.
"""

from __future__ import annotations

import logging

import pytest

from extractor.models import CachedFunction, Call, Entry, SchemaVersion
from extractor.recording import DatabaseRecorder
from tests.recording.helpers import person_model

pytestmark = pytest.mark.django_db

LONG_MODEL = "m" * 300
LONG_VERSION = "v" * 150
LONG_NAME = "extract_" + "x" * 300


def _max_length(model: type, name: str) -> int:
    length = model._meta.get_field(name).max_length
    assert isinstance(length, int)
    return length


def test_nul_bytes_and_overlong_names_are_written_cleaned_in_one_batch(
    fake_llm, make_extractor, use_recorder, caplog
):
    recorder = use_recorder(DatabaseRecorder(background=False))
    fake_llm.answer_with({"name": "Ada\x00 Lovelace"})
    extract = make_extractor(person_model(), name=LONG_NAME, version=LONG_VERSION)

    extract("Ada\x00 Lovelace", model=LONG_MODEL)
    extract("Ada\x00 Lovelace", model=LONG_MODEL)
    extract("Grace Hopper", model="gpt-4o-mini")
    with caplog.at_level(logging.WARNING, logger="extractor.recording"):
        written = recorder.flush()

    assert written == 3
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    function_length = _max_length(Entry, "function")
    entry = Entry.objects.get(key=extract.cache.cache_key("Ada\x00 Lovelace", model=LONG_MODEL))
    assert entry.arguments == {"text": "Ada Lovelace", "model": LONG_MODEL}
    assert entry.output == {"name": "Ada Lovelace"}
    assert entry.input_preview.startswith("Ada Lovelace · mmm")
    assert len(entry.input_preview) <= _max_length(Entry, "input_preview")
    assert entry.llm_model == LONG_MODEL[: _max_length(Entry, "llm_model")]
    assert entry.version == LONG_VERSION[: _max_length(Entry, "version")]
    assert entry.function == extract.cache.info.name[:function_length]
    assert len(entry.function) == function_length
    assert entry.hit_count == 1
    calls = list(Call.objects.order_by("created_at", "id"))
    assert [call.outcome for call in calls] == ["miss", "hit", "miss"]
    assert {call.function for call in calls} == {entry.function}
    assert calls[0].llm_model == LONG_MODEL[: _max_length(Call, "llm_model")]
    assert "\x00" not in calls[0].input_preview
    assert [call.entry_id for call in calls[:2]] == [entry.pk, entry.pk]
    function = CachedFunction.objects.get()
    assert (function.name, function.version) == (entry.function, entry.version)
    assert SchemaVersion.objects.count() == 1
