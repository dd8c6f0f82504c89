"""An invalidation runs as a job: the request only queues it, and its page follows it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from extractor.models import Entry, Invalidation
from tests.factories import EntryFactory, InvalidationFactory

pytestmark = pytest.mark.django_db

FUNCTION = "extractor.extraction:extract_UserDetail"
POLLS = 'hx-trigger="every 1s"'


def detail_url(pk: int) -> str:
    return reverse("extractor:invalidation", args=[pk])


def test_the_post_queues_the_job_and_returns_before_any_row_is_touched(staff_client, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    EntryFactory.create_batch(3, function=FUNCTION)

    response = staff_client.post(
        reverse("extractor:invalidate"), {"action": "function", "target": FUNCTION}
    )

    invalidation = Invalidation.objects.get()
    assert response["Location"] == detail_url(invalidation.pk)
    assert (invalidation.status, invalidation.marked_at) == (Invalidation.Status.QUEUED, None)
    # Marking is the job's: a million rows would take the request seconds.
    assert set(Entry.objects.values_list("status", flat=True)) == {Entry.Status.LIVE}
    job = DBTaskResult.objects.get()
    assert (job.task_path, job.args_kwargs["kwargs"]) == (
        "extractor.tasks.invalidate",
        {"invalidation_id": invalidation.pk},
    )
    page = staff_client.get(detail_url(invalidation.pk)).content.decode()
    assert "Waiting for a worker" in page
    assert POLLS in page


def test_a_running_job_shows_its_progress_in_a_fragment_that_polls(staff_client):
    running = InvalidationFactory(marked_at=timezone.now(), matched=1000, removed=400)

    fragment = staff_client.get(detail_url(running.pk), headers={"HX-Request": "true"})
    html = fragment.content.decode()

    assert "<h1>" not in html  # only the fragment
    assert POLLS in html
    assert '<progress value="400" max="1000"' in html
    assert "Removed 400 of 1000 from the backend." in html
    assert f'href="{detail_url(running.pk)}">Refresh</a>' in html  # without JavaScript


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(Invalidation.Status.DONE, ">Done<"), (Invalidation.Status.FAILED, "It stopped:")],
)
def test_a_finished_job_stops_the_polling_and_shows_the_outcome(staff_client, status, outcome):
    error = "Redis is down" if status == Invalidation.Status.FAILED else ""
    finished = InvalidationFactory(
        status=status, marked_at=timezone.now(), matched=5, removed=5, error=error
    )

    html = staff_client.get(detail_url(finished.pk), headers={"HX-Request": "true"}).content
    html = html.decode()

    assert POLLS not in html
    assert "<progress" not in html
    assert outcome in html
