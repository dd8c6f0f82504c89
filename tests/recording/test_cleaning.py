"""Values are made storable before an insert, by the limits of their model field:
NUL bytes go, text is clipped to its column, integers are clamped to the column's
range, NaN and infinities become storable numbers, and JSON loses what jsonb refuses."""

from __future__ import annotations

import math

import pytest
from django.db import connection

from extractor.models import Call, Entry
from extractor.recording import cleaning
from extractor.recording.cleaning import clean_json, clean_text, field_cleaner, row_cleaner


@pytest.fixture(autouse=True)
def _fresh_cleaners():
    """Each test builds its field cleaners anew, as a new process would: cached ones
    from an earlier test (or from before mutmut forks) would hide a changed builder."""
    field_cleaner.cache_clear()
    yield
    field_cleaner.cache_clear()


def test_text_of_exactly_its_columns_length_is_kept_whole():
    assert clean_text("a" * 10, 10) == "a" * 10
    assert clean_text("a" * 11, 10) == "a" * 10


def test_nul_bytes_are_removed_from_text():
    assert clean_text("Ja\x00son", 10) == "Jason"


def test_a_text_field_leaves_what_is_not_text_alone():
    clean_version = field_cleaner(Entry, "version")

    assert clean_version(None) is None
    assert clean_version(7) == 7
    assert clean_version("v" * 150) == "v" * Entry._meta.get_field("version").max_length


def test_json_keeps_finite_numbers_and_drops_what_jsonb_refuses():
    assert clean_json({"price": 1.5, "count": 3, "tags": ["a\x00b"]}) == {
        "price": 1.5,
        "count": 3,
        "tags": ["ab"],
    }
    assert clean_json({"nan": math.nan, "inf": math.inf, "-inf": -math.inf}) == {
        "nan": None,
        "inf": None,
        "-inf": None,
    }


@pytest.fixture
def column_range(monkeypatch):
    """Integer columns that hold 0 to 100 (or any range a test sets)."""

    def set_range(low: int | None, high: int | None) -> None:
        monkeypatch.setattr(cleaning, "_integer_range", lambda internal_type: (low, high))

    set_range(0, 100)
    return set_range


def test_an_integer_is_clamped_to_its_columns_range(column_range):
    clean = field_cleaner(Entry, "prompt_tokens")

    assert [clean(value) for value in (-1, 0, 42, 100, 101, "7", None)] == [
        0,
        0,
        42,
        100,
        100,
        7,
        None,
    ]


def test_an_integer_column_without_a_bound_takes_any_integer(column_range):
    column_range(None, None)

    assert field_cleaner(Entry, "prompt_tokens")(-(10**30)) == -(10**30)
    assert field_cleaner(Entry, "prompt_tokens")(10**30) == 10**30


def test_the_range_is_the_databases_for_that_column_type():
    low, high = connection.ops.integer_field_range("PositiveIntegerField")
    clean = field_cleaner(Entry, "prompt_tokens")

    assert (clean(-5), clean(high + 1)) == (low, high) == (0, high)


def test_a_float_that_is_not_finite_is_stored_as_zero():
    clean = field_cleaner(Call, "latency_ms")

    assert [clean(value) for value in (1.25, math.nan, math.inf, None)] == [1.25, 0.0, 0.0, None]


def test_a_row_is_cleaned_column_by_column_and_must_have_one_value_per_column(column_range):
    clean = row_cleaner(Call, ["function", "prompt_tokens", "latency_ms"])

    assert clean(("app:f\x00", 500, math.nan)) == ("app:f", 100, 0.0)
    with pytest.raises(ValueError, match="shorter"):
        clean(("app:f", 500))
