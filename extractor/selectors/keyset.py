"""Keyset (cursor) pagination: a page starts where the last one ended, never at an OFFSET.

A page of a list ordered by (k1, ..., id) is read as "the next N rows after this
row's keys", which the database answers by walking an index from that point:
page 20,000 costs what page 1 costs, and rows inserted meanwhile never shift a
page onto rows already shown. The cursor in the query string (`after` or
`before`) holds the boundary row's keys, tagged with the ordering's name so a
cursor of another sort is refused; anything that does not decode to keys of the
right types is BadCursor, which the views answer with the first page.

A page is read as runs, each one range of the ordering's index read in the
index's own order (_runs): the rest of the cursor's group, then what follows it;
only the first key may be nullable, and its NULLs (last) are a run of their own,
so no query asks PostgreSQL for DESC NULLS LAST, which an ascending index cannot
serve. A page that spans runs reads two or three of them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import models
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import OrderBy

M = TypeVar("M", bound=models.Model)

# A cursor longer than this is not one of ours.
MAX_CURSOR_LENGTH = 300
_MAX_INT = 2**63 - 1


class BadCursor(ValueError):
    """A cursor that is damaged, of another sort or of values the keys cannot hold."""


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = True
    # NULLs sort after every value (only the first key may be nullable).
    nullable: bool = False


@dataclass(frozen=True)
class Ordering:
    """A list's order: keys ending in a unique one (the primary key)."""

    name: str  # tags cursors: a cursor made under another ordering is refused
    keys: tuple[SortKey, ...]

    def __post_init__(self) -> None:
        if any(key.nullable for key in self.keys[1:]):
            raise ValueError("only the first key of an ordering may be nullable")

    def order_by(self, forward: bool = True) -> list[OrderBy]:
        """The whole order in SQL, NULLs last (for a list read without a cursor)."""
        return [_order(key, forward, nulls=key.nullable) for key in self.keys]


@dataclass(frozen=True)
class Cursor:
    values: tuple[Any, ...]
    # True: the rows after these keys (the next page); False: the rows before them.
    after: bool = True


@dataclass
class KeysetPage(Generic[M]):
    object_list: list[M]
    has_next: bool
    has_previous: bool
    next_cursor: str  # "" when there is no next page
    previous_cursor: str  # "" when there is no previous page
    # Read from the start of the list (no cursor): the page a count can be taken from.
    is_first: bool


def encode(ordering: Ordering, row: models.Model) -> str:
    values = [ordering.name, *(_dump(getattr(row, key.field)) for key in ordering.keys)]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(
    params: Mapping[str, str], ordering: Ordering, model: type[models.Model]
) -> Cursor | None:
    """The cursor in `after` or `before`, checked against the ordering's keys."""
    after, before = params.get("after", ""), params.get("before", "")
    if not after and not before:
        return None
    if after and before:
        raise BadCursor("a page link has either `after` or `before`, not both")
    token = after or before
    if len(token) > MAX_CURSOR_LENGTH:
        raise BadCursor("the cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("the cursor does not decode") from exc
    if not isinstance(decoded, list) or len(decoded) != len(ordering.keys) + 1:
        raise BadCursor("the cursor has the wrong shape")
    if decoded[0] != ordering.name:
        raise BadCursor("the cursor belongs to another sort")
    values = tuple(
        _load(model._meta.get_field(key.field), key, value)
        for key, value in zip(ordering.keys, decoded[1:], strict=True)
    )
    return Cursor(values, after=bool(after))


def keyset_page(
    queryset: QuerySet[M], ordering: Ordering, cursor: Cursor | None, size: int
) -> KeysetPage[M]:
    """One page of `queryset` in `ordering`, from the start or from `cursor`."""
    if cursor is not None and not cursor.after:
        rows = _read(queryset, ordering, cursor.values, forward=False, limit=size + 1)
        if len(rows) <= size:
            # Fewer than a page before the cursor: this is the start of the list;
            # show a whole first page rather than a short one.
            return keyset_page(queryset, ordering, None, size)
        rows = rows[:size][::-1]
        has_previous = True
        has_next = bool(_read(queryset, ordering, _keys(ordering, rows[-1]), True, 1))
    else:
        start = cursor.values if cursor is not None else None
        rows = _read(queryset, ordering, start, forward=True, limit=size + 1)
        has_next = len(rows) > size
        rows = rows[:size]
        if cursor is None:
            has_previous = False
        else:
            # From the first row shown, or from the cursor when this page is empty
            # (its rows were removed since the link was made).
            boundary = _keys(ordering, rows[0]) if rows else cursor.values
            has_previous = bool(_read(queryset, ordering, boundary, False, 1))
    return KeysetPage(
        object_list=rows,
        has_next=has_next,
        has_previous=has_previous,
        next_cursor=encode(ordering, rows[-1]) if has_next and rows else "",
        previous_cursor=encode(ordering, rows[0]) if has_previous and rows else "",
        is_first=cursor is None,
    )


def _read(
    queryset: QuerySet[M],
    ordering: Ordering,
    start: Sequence[Any] | None,
    forward: bool,
    limit: int,
) -> list[M]:
    """Up to `limit` rows beyond `start` (exclusive) in the direction of travel,
    read run by run (_runs) until the page is full."""
    rows: list[M] = []
    for condition, keys in _runs(ordering, start, forward):
        run = queryset.filter(condition).order_by(*_plain_order(keys, forward))
        rows += list(run[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


Run = tuple[Q, Sequence[SortKey]]  # which rows, and the keys that order them


def _runs(ordering: Ordering, start: Sequence[Any] | None, forward: bool) -> list[Run]:
    """The rows beyond `start` as runs, each one range of the ordering's index.

    Past (v1, id1) in (k1, id) order are first the rest of the k1 = v1 group
    (k1 = v1 AND id < id1, ordered by id), then every k1 < v1 (ordered by k1,
    id). Each is a plain index range on both databases. One condition for both,
    `(k1, id) < (v1, id1)`, has SQLite walk from the start of the k1 = v1 group
    (PostgreSQL too, when it is written out with OR), which for a sort with few
    distinct values (hit counts) is a walk through a hundred thousand rows.
    NULLs of a nullable first key are a run of their own, after the values.
    """
    first, rest = ordering.keys[0], ordering.keys[1:]
    null = Q(**{f"{first.field}__isnull": True})
    if start is None:
        if not first.nullable:
            return [(Q(), ordering.keys)]
        values: Run = (Q(**{f"{first.field}__isnull": False}), ordering.keys)
        nulls: Run = (null, rest)
        return [values, nulls] if forward else [nulls, values]
    if start[0] is None:
        # In the NULL run: the rest of it, then (going back) every value.
        tail = [
            (null & condition, keys) for condition, keys in _group_runs(rest, start[1:], forward)
        ]
        if forward:
            return tail
        return [*tail, (Q(**{f"{first.field}__isnull": False}), ordering.keys)]
    runs = _group_runs(ordering.keys, start, forward)
    if first.nullable and forward:
        runs.append((null, rest))
    return runs


def _group_runs(keys: Sequence[SortKey], values: Sequence[Any], forward: bool) -> list[Run]:
    """Beyond `values` in (keys) order: the innermost group's rest first, outwards."""
    runs: list[Run] = []
    for depth in reversed(range(len(keys))):
        equal = {key.field: value for key, value in zip(keys[:depth], values[:depth], strict=True)}
        key = keys[depth]
        past = Q(**equal) & Q(**{f"{key.field}__{_past(key, forward)}": values[depth]})
        runs.append((past, keys[depth:]))
    return runs


def _past(key: SortKey, forward: bool) -> str:
    return "lt" if key.descending == forward else "gt"


def _plain_order(keys: Sequence[SortKey], forward: bool) -> list[OrderBy]:
    return [_order(key, forward, nulls=False) for key in keys]


def _order(key: SortKey, forward: bool, nulls: bool) -> OrderBy:
    descending = key.descending == forward
    if not nulls:
        return F(key.field).desc() if descending else F(key.field).asc()
    # NULLs last in the display order, so first when travelling back.
    placement = {"nulls_last": True} if forward else {"nulls_first": True}
    return F(key.field).desc(**placement) if descending else F(key.field).asc(**placement)


def _keys(ordering: Ordering, row: models.Model) -> tuple[Any, ...]:
    return tuple(getattr(row, key.field) for key in ordering.keys)


def _dump(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _load(field: Any, key: SortKey, value: Any) -> Any:
    if value is None:
        if key.nullable:
            return None
        raise BadCursor(f"{key.field} cannot be empty")
    if isinstance(field, models.DateTimeField):
        if not isinstance(value, str):
            raise BadCursor(f"{key.field} is not a date and time")
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadCursor(f"{key.field} is not a date and time") from exc
        if moment.tzinfo is None:
            raise BadCursor(f"{key.field} has no time zone")
        return moment
    if isinstance(field, models.IntegerField | models.AutoField):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
            raise BadCursor(f"{key.field} is not a whole number in range")
        return value
    raise BadCursor(f"{key.field} cannot be paged by")  # pragma: no cover - a coding error
