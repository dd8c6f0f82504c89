"""Background jobs, on django-tasks (Django 6's django.tasks, backported): queued by the
views, run by `manage.py db_worker` (README, "Background jobs")."""

from __future__ import annotations

from django_tasks import task

from extractor.services.invalidation import invalidation_work


@task()
def invalidate(invalidation_id: int) -> dict[str, object]:
    """Carry out a queued invalidation. The result says whether this run did the work,
    since a duplicate or repeated job finds it taken and does nothing."""
    invalidation = invalidation_work(invalidation_id=invalidation_id)
    if invalidation is None:
        return {"invalidation": invalidation_id, "ran": False}
    return {
        "invalidation": invalidation_id,
        "ran": True,
        "status": invalidation.status,
        "matched": invalidation.matched,
        "removed": invalidation.removed,
    }
