"""Indexes for the entries and calls lists at scale, and the entries' text search.

- Keyset orders of the entries list: (last_hit_at, id) and (hit_count, id).
- Counts of a schema version's live entries: (schema_version, status).
- The call log by model: (llm_model, created_at).
- PostgreSQL: statistics of the entries' (function, code, schema version) and
  (schema version, status) combinations and of the searched text, so counts of
  stale, live, a version's or found entries are estimated closely.
- Search over input and output: on PostgreSQL a GIN trigram index (pg_trgm) over
  the three columns joined into one text (extractor/selectors/search.py spells
  the same expression); on SQLite an external-content FTS5 table with the
  trigram tokenizer, kept by triggers on the entries table.

On PostgreSQL every index is built CONCURRENTLY (hence atomic = False): a table
of millions of calls keeps taking the recorder's inserts while it is built.

SQLite: the triggers belong to extractor_entry. A later migration that makes
Django rebuild that table (most AlterField/RemoveField on SQLite) drops them
with the old table and must create them again (SQLITE_TRIGGERS below);
tests/selectors/test_search.py fails if they are missing.
"""

from django.db import migrations, models

INDEXES = [
    ("call", models.Index(fields=["llm_model", "created_at"], name="extractor_call_model_at")),
    ("entry", models.Index(fields=["last_hit_at", "id"], name="extractor_entry_lasthit_id")),
    ("entry", models.Index(fields=["hit_count", "id"], name="extractor_entry_hits_id")),
    (
        "entry",
        models.Index(fields=["schema_version", "status"], name="extractor_entry_version_st"),
    ),
]

# Frozen copy of extractor.selectors.search.SEARCH_TEXT (the query must spell the
# indexed expression exactly).
SEARCH_TEXT = (
    '("extractor_entry"."input_preview" || E\'\\n\''
    " || COALESCE(\"extractor_entry\".\"arguments\"::text, '') || E'\\n'"
    ' || "extractor_entry"."output"::text)'
)

POSTGRES_SEARCH = [
    # Trusted since PostgreSQL 13: a database owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS extractor_entry_search_trgm"
    f" ON extractor_entry USING gin ({SEARCH_TEXT} gin_trgm_ops)",
    # Which (function, code, schema version) combinations are how common: without
    # them the planner multiplies the three columns' frequencies as if unrelated
    # and misjudges how many entries are stale (or live) by a factor of three.
    "CREATE STATISTICS IF NOT EXISTS extractor_entry_code_stats (mcv)"
    " ON function, code_fingerprint, schema_version_id FROM extractor_entry",
    # Likewise how many of a schema version's entries are live.
    "CREATE STATISTICS IF NOT EXISTS extractor_entry_version_stats (mcv)"
    " ON schema_version_id, status FROM extractor_entry",
    # A sample of the searched text itself: without it "how many contain X" is a
    # guess from the pattern's length (off by 2.5 times for a common word).
    f"CREATE STATISTICS IF NOT EXISTS extractor_entry_search_stats ON ({SEARCH_TEXT})"
    " FROM extractor_entry",
    "ANALYZE extractor_entry",
]
POSTGRES_SEARCH_REVERSE = [
    "DROP STATISTICS IF EXISTS extractor_entry_search_stats",
    "DROP STATISTICS IF EXISTS extractor_entry_version_stats",
    "DROP STATISTICS IF EXISTS extractor_entry_code_stats",
    "DROP INDEX CONCURRENTLY IF EXISTS extractor_entry_search_trgm",
]

_COLUMNS = "input_preview, arguments, output"
_NEW = "new.id, new.input_preview, new.arguments, new.output"
_OLD = "'delete', old.id, old.input_preview, old.arguments, old.output"
_INSERT = f"INSERT INTO extractor_entry_search(rowid, {_COLUMNS}) VALUES ({_NEW});"
_DELETE = (
    "INSERT INTO extractor_entry_search(extractor_entry_search, rowid, "
    f"{_COLUMNS}) VALUES ({_OLD});"
)
SQLITE_TRIGGERS = [
    "CREATE TRIGGER extractor_entry_search_insert AFTER INSERT ON extractor_entry"
    f" BEGIN {_INSERT} END",
    "CREATE TRIGGER extractor_entry_search_delete AFTER DELETE ON extractor_entry"
    f" BEGIN {_DELETE} END",
    # Only when the searched text changes: hit counts and status are updated often.
    f"CREATE TRIGGER extractor_entry_search_update AFTER UPDATE OF {_COLUMNS}"
    f" ON extractor_entry BEGIN {_DELETE} {_INSERT} END",
]
SQLITE_SEARCH = [
    f"CREATE VIRTUAL TABLE extractor_entry_search USING fts5({_COLUMNS},"
    " content='extractor_entry', content_rowid='id', tokenize='trigram')",
    *SQLITE_TRIGGERS,
    "INSERT INTO extractor_entry_search(extractor_entry_search) VALUES ('rebuild')",
]
SQLITE_SEARCH_REVERSE = [
    "DROP TRIGGER IF EXISTS extractor_entry_search_insert",
    "DROP TRIGGER IF EXISTS extractor_entry_search_delete",
    "DROP TRIGGER IF EXISTS extractor_entry_search_update",
    "DROP TABLE IF EXISTS extractor_entry_search",
]


def add_indexes(apps, schema_editor):
    concurrently = schema_editor.connection.vendor == "postgresql"
    for model_name, index in INDEXES:
        model = apps.get_model("extractor", model_name)
        if concurrently:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)


def remove_indexes(apps, schema_editor):
    concurrently = schema_editor.connection.vendor == "postgresql"
    for model_name, index in INDEXES:
        model = apps.get_model("extractor", model_name)
        if concurrently:
            schema_editor.remove_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index)


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def add_search(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, POSTGRES_SEARCH)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_SEARCH)


def remove_search(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, POSTGRES_SEARCH_REVERSE)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_SEARCH_REVERSE)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("extractor", "0004_callrollup_droppedrecords"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name=model_name, index=index)
                for model_name, index in INDEXES
            ],
            database_operations=[migrations.RunPython(add_indexes, remove_indexes)],
        ),
        migrations.RunPython(add_search, remove_search),
    ]
