"""Every model of the app is in the Django admin, and its list pages load."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from extractor.models import CachedFunction, Call, Entry, Invalidation, Replay, SchemaVersion
from tests.factories import CallFactory, InvalidationFactory

pytestmark = pytest.mark.django_db

MODELS = [SchemaVersion, CachedFunction, Entry, Call, Invalidation, Replay]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_each_model_has_a_working_admin_list(client, model):
    CallFactory()
    InvalidationFactory()
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client.force_login(superuser)

    url = reverse(f"admin:extractor_{model._meta.model_name}_changelist")
    response = client.get(url)

    assert admin.site.is_registered(model)
    assert response.status_code == 200
