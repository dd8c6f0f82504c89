"""Entries' text search through an index: pg_trgm on PostgreSQL, FTS5 on SQLite.

What is searched is unchanged: the text anywhere in the input preview, the
arguments or the output (the JSON columns as their stored text), case aside,
or a key that starts with it. Migration 0005 builds the indexes:

- PostgreSQL: one GIN trigram index over the three columns joined into one text
  (SEARCH_TEXT); `ILIKE '%text%'` on that same expression is answered from it.
- SQLite: an external-content FTS5 table with the trigram tokenizer (substring
  matching, not words), kept in step with the entries table by triggers.

A text of one or two characters has no trigram to look up: it is matched with
the plain substring test, which the list's ordered index walk stops early on
(so short a text matches most rows).
"""

from __future__ import annotations

import re

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

TRIGRAM = 3

# PostgreSQL: the indexed expression. The query must spell it exactly so (the
# planner matches the index by expression); migration 0005 has a frozen copy.
SEARCH_TEXT = (
    '("extractor_entry"."input_preview" || E\'\\n\''
    " || COALESCE(\"extractor_entry\".\"arguments\"::text, '') || E'\\n'"
    ' || "extractor_entry"."output"::text)'
)
TRIGRAM_INDEX = "extractor_entry_search_trgm"

# SQLite: the FTS5 table (its rowid is the entry's id).
FTS_TABLE = "extractor_entry_search"

_HEX = re.compile(r"[0-9a-f]+")


def entry_text_search(text: str) -> Q:
    """Entries whose input or output contains `text`, or whose key starts with it."""
    if len(text) < TRIGRAM:
        matches = (
            Q(input_preview__icontains=text)
            | Q(arguments__icontains=text)
            | Q(output__icontains=text)
        )
    elif connection.vendor == "postgresql":
        pattern = f"%{connection.ops.prep_for_like_query(text)}%"
        matches = Q(RawSQL(f"{SEARCH_TEXT} ILIKE %s", [pattern], output_field=BooleanField()))
    else:
        phrase = '"' + text.replace('"', '""') + '"'
        in_index = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s"
        matches = Q(pk__in=RawSQL(in_index, [phrase]))
    prefix = key_prefix(text)
    return matches if prefix is None else matches | prefix


def key_prefix(text: str) -> Q | None:
    """Keys are lowercase hex: a prefix is a range of the key index (LIKE 'abc%' is not
    indexed on SQLite, whose LIKE ignores case). Text that is not hex prefixes no key."""
    prefix = text.lower()
    if not _HEX.fullmatch(prefix):
        return None
    # Every key that starts with the prefix sorts before prefix + "g" (after "f").
    return Q(key__gte=prefix, key__lt=prefix + "g")


def rebuild_sqlite_index() -> None:
    """Re-read every entry into the FTS table (after a bulk load made without triggers)."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
