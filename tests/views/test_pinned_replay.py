"""Replay's "accept" when the backend refuses the value (issue 11: never exercised)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from extractor import extraction
from extractor.models import Entry, Replay

pytestmark = pytest.mark.django_db

# Where a key ended up in a cache path by mistake: the error text names the path.
SECRET = "sk-pinned0123456789abcdefXYZ"


def test_a_refused_write_on_accept_is_a_redacted_message_and_changes_nothing(
    staff_client, fake_llm, flush_records, settings, tmp_path
):
    fake_llm.answer_with({"name": "Jason", "age": 25})
    extraction.extract("Jason is 25 years old", "UserDetail", "gpt-4o-mini")
    flush_records()
    entry = Entry.objects.get()
    fake_llm.answer_with({"name": "Jason", "age": 26})
    staff_client.post(reverse("extractor:replay-start", args=[entry.pk]))
    replay = Replay.objects.get()
    # A cache directory nobody can create (its parent is a file): every write refused.
    blocker = tmp_path / SECRET
    blocker.write_text("not a directory")
    settings.EXTRACTOR_CACHE_URL = f"disk://{blocker / 'cache'}"

    response = staff_client.post(reverse("extractor:replay-accept", args=[replay.pk]), follow=True)

    shown = [str(message) for message in response.context["messages"]]
    assert response.redirect_chain == [(reverse("extractor:entry", args=[entry.pk]), 302)]
    assert len(shown) == 1
    assert shown[0].startswith("The cached value was not replaced: ")
    assert "cannot be opened" in shown[0]
    assert "sk-***" in shown[0]
    assert SECRET[3:] not in shown[0]
    # Nothing was changed: the rows rolled back with the refused write.
    entry.refresh_from_db()
    assert entry.status == Entry.Status.LIVE
    assert Entry.objects.count() == 1
    replay.refresh_from_db()
    assert replay.accepted_at is None
