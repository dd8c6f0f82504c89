import django.utils.timezone
from django.db import migrations, models


def earlier_ones_were_marked_when_asked(apps, schema_editor):
    # Before jobs, the request marked the rows as it created the invalidation: a retry
    # of one of those must not mark again, and its lease dates from its creation.
    Invalidation = apps.get_model("extractor", "Invalidation")
    Invalidation.objects.update(
        marked_at=models.F("created_at"), heartbeat_at=models.F("created_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("extractor", "0007_invalidate_a_selection"),
    ]

    operations = [
        migrations.AddField(
            model_name="invalidation",
            name="marked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="invalidation",
            name="claimed_by",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="invalidation",
            name="heartbeat_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="invalidation",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("done", "Done"),
                    ("failed", "Failed, retry to finish"),
                ],
                default="running",
                max_length=10,
            ),
        ),
        migrations.RunPython(earlier_ones_were_marked_when_asked, migrations.RunPython.noop),
    ]
