"""An invalidation's entries in id order, read from one index.

The job deletes an invalidation's marked values a chunk at a time, each chunk the
next ids after the last one's (`invalidation_id = X AND id > last ORDER BY id`).
With only the foreign key's index, or the status index, PostgreSQL read and sorted
every still-marked row for each chunk: 0.9 s a chunk at a million entries. This
index holds them in that order, so a chunk reads its rows and stops.

Built CONCURRENTLY on PostgreSQL (hence atomic = False), as in 0005: the entries
table keeps taking writes while it is built.
"""

from django.db import migrations, models

INDEX = models.Index(fields=["invalidation", "id"], name="extractor_entry_inval_id")


def add_index(apps, schema_editor):
    model = apps.get_model("extractor", "entry")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(model, INDEX, concurrently=True)
    else:
        schema_editor.add_index(model, INDEX)


def remove_index(apps, schema_editor):
    model = apps.get_model("extractor", "entry")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, INDEX, concurrently=True)
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("extractor", "0009_callrollup_coalesced"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="entry", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, remove_index)],
        ),
    ]
