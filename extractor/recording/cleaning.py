"""Values made storable before the insert, so the database never refuses a batch.

PostgreSQL refuses a NUL byte in text and `\\u0000` inside jsonb, a string longer
than its varchar, an integer beyond its column; one such value used to sink a
whole batch into a row-by-row retry. Every limit is read from the model fields
(and the connection's integer ranges), so a migration stays the only place
that sets one. SQLite would take most of these values: they are cleaned there
too, so both databases hold the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django.db import connection, models

Cleaner = Callable[[Any], Any]


def clean_text(value: str, max_length: int | None = None) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    if max_length is not None and len(value) > max_length:
        value = value[:max_length]
    return value


def clean_json(value: Any) -> Any:
    """The value with NUL bytes removed from every string and object key inside it."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean_json(name): clean_json(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity; jsonb refuses them
    return value


@cache
def _integer_range(internal_type: str) -> tuple[int | None, int | None]:
    low, high = connection.ops.integer_field_range(internal_type)
    return low, high


def _integer_cleaner(internal_type: str) -> Cleaner:
    def clean(value: Any) -> Any:
        if value is None:
            return None
        low, high = _integer_range(internal_type)
        number = int(value)
        if low is not None and number < low:
            return low
        if high is not None and number > high:
            return high
        return number

    return clean


def _float_cleaner(value: Any) -> Any:
    if value is None:
        return None
    number = float(value)
    # SQLite stores NaN as NULL (a NOT NULL column then refuses the row).
    return number if math.isfinite(number) else 0.0


def _text_cleaner(max_length: int | None) -> Cleaner:
    def clean(value: Any) -> Any:
        return clean_text(value, max_length) if isinstance(value, str) else value

    return clean


def _identity(value: Any) -> Any:
    return value


@cache
def field_cleaner(model: type[models.Model], name: str) -> Cleaner:
    """The cleaner for one field, found by name or column ("entry" or "entry_id")."""
    field = model._meta.get_field(name)
    if isinstance(field, models.JSONField):
        return clean_json
    if isinstance(field, models.CharField | models.TextField):
        return _text_cleaner(field.max_length)
    if isinstance(field, models.IntegerField):
        return _integer_cleaner(field.get_internal_type())
    if isinstance(field, models.FloatField):
        return _float_cleaner
    return _identity


def clean_fields(model: type[models.Model], values: dict[str, Any]) -> dict[str, Any]:
    """Field name -> value, each value made storable in its column."""
    return {name: field_cleaner(model, name)(value) for name, value in values.items()}


def row_cleaner(
    model: type[models.Model], columns: Iterable[str]
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function cleaning a tuple of values in `columns` order."""
    cleaners = tuple(field_cleaner(model, column) for column in columns)

    def clean(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(cleaner(value) for cleaner, value in zip(cleaners, row, strict=True))

    return clean
