"""A document's calls, newest first (the Documents page): (document_sha, created_at).

Built CONCURRENTLY on PostgreSQL (hence atomic = False), as in 0005 and 0010: a
call log of millions keeps taking the recorder's inserts while it is built.
"""

from django.db import migrations, models

INDEX = models.Index(fields=["document_sha", "created_at"], name="extractor_call_document_at")


def add_index(apps, schema_editor):
    model = apps.get_model("extractor", "call")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(model, INDEX, concurrently=True)
    else:
        schema_editor.add_index(model, INDEX)


def remove_index(apps, schema_editor):
    model = apps.get_model("extractor", "call")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, INDEX, concurrently=True)
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("extractor", "0011_prompt_cache_writes_and_documents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="call", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, remove_index)],
        ),
    ]
