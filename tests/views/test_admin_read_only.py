"""The admin shows cached rows but cannot add, edit or delete them: the dashboard and the
cache backend would disagree with an edited row (callers keep the original value)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import models
from django.forms import modelform_factory
from django.urls import reverse

from extractor.models import CachedFunction, Call, Entry, Invalidation, Replay, SchemaVersion
from tests.factories import CachedFunctionFactory, CallFactory, InvalidationFactory

pytestmark = pytest.mark.django_db

MODELS = [SchemaVersion, CachedFunction, Entry, Call, Invalidation, Replay]


@pytest.fixture
def superuser_client(client):
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(superuser)
    return client


@pytest.fixture
def rows() -> dict[type[models.Model], models.Model]:
    call = CallFactory()
    entry = call.entry
    return {
        SchemaVersion: entry.schema_version,
        CachedFunction: CachedFunctionFactory(schema_version=entry.schema_version),
        Entry: entry,
        Call: call,
        Invalidation: InvalidationFactory(),
        Replay: Replay.objects.create(entry=entry, output={"name": "Fresh"}),
    }


def admin_url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:extractor_{model._meta.model_name}_{view}", args=args)


def form_data(row: models.Model) -> dict[str, Any]:
    """Every field of `row` as a valid admin form would post it (dates split in two)."""
    form = modelform_factory(type(row), fields="__all__")(instance=row)
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, datetime.datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.date(), value.time()
        data[name] = "" if value is None else value
    return data


def test_a_valid_edit_of_an_entry_is_refused_and_changes_nothing(superuser_client, rows):
    entry = rows[Entry]
    data = form_data(entry) | {"output": '{"name": "Edited by hand", "age": 1}'}

    response = superuser_client.post(admin_url(Entry, "change", entry.pk), data)

    entry.refresh_from_db()
    assert response.status_code == 403
    assert entry.output != {"name": "Edited by hand", "age": 1}


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_each_cached_row_can_be_viewed_but_not_added_changed_or_deleted(
    superuser_client, rows, model
):
    row = rows[model]
    before = form_data(row)

    page = superuser_client.get(admin_url(model, "change", row.pk))
    post = superuser_client.post(admin_url(model, "change", row.pk), before)
    add = superuser_client.get(admin_url(model, "add"))
    delete = superuser_client.post(admin_url(model, "delete", row.pk), {"post": "yes"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (post.status_code, add.status_code, delete.status_code) == (403, 403, 403)
    assert model.objects.filter(pk=row.pk).exists()
