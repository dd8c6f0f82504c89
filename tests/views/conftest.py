from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        username="ada", password="correct-horse-battery", is_staff=True
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_user_client(client, db):
    user = get_user_model().objects.create_user(username="bob", password="pw-bob-123456")
    client.force_login(user)
    return client
