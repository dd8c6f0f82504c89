"""Provider prompt caching: cache writes beside reads, and context documents.

SQLite: adding the entries' columns makes Django rebuild extractor_entry, which
drops the text search triggers of migration 0005 with the old table; they are
created again at the end (tests/selectors/test_search.py fails without them).
"""

import importlib

import django.utils.timezone
from django.db import migrations, models

_SEARCH = importlib.import_module("extractor.migrations.0005_list_indexes_and_search")


def recreate_search_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for trigger in ("insert", "delete", "update"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS extractor_entry_search_{trigger}")
    for statement in _SEARCH.SQLITE_TRIGGERS:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("extractor", "0010_entry_invalidation_id_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="Document",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sha256", models.CharField(max_length=64, unique=True)),
                ("name", models.CharField(max_length=255)),
                ("text", models.TextField()),
                ("size_bytes", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.AddField(
            model_name="call",
            name="cache_write_1h_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="call",
            name="cache_write_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="call",
            name="document_sha",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AddField(
            model_name="callrollup",
            name="cache_write_1h_tokens",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="callrollup",
            name="cache_write_tokens",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="entry",
            name="cache_write_1h_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="entry",
            name="cache_write_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="entry",
            name="document_sha",
            field=models.CharField(
                blank=True, db_default="", db_index=True, default="", max_length=64
            ),
        ),
        migrations.AddField(
            model_name="replay",
            name="cache_write_1h_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="replay",
            name="cache_write_tokens",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(recreate_search_triggers, migrations.RunPython.noop),
    ]
