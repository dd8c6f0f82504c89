"""Upgrading: the migration that adds the counters counts the call log already there."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("extractor", "0003_call_key_created_at_index")]
AFTER = [("extractor", "0004_callrollup_droppedrecords")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def test_the_counters_start_as_a_recount_of_the_existing_call_log():
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    version = old.get_model("extractor", "SchemaVersion").objects.create(
        name="app.Person", number=1, fingerprint="f" * 64, json_schema={}
    )
    entry = old.get_model("extractor", "Entry").objects.create(
        key="k" * 64,
        function="app:extract",
        schema_version=version,
        code_fingerprint="c" * 64,
        input_fingerprint="i" * 64,
        output={},
        llm_model="gpt-4o-mini",
        prompt_tokens=100,
        completion_tokens=20,
        latency_ms=900.0,
    )
    at = dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.UTC)
    Call = old.get_model("extractor", "Call")
    common = {"key": entry.key, "function": entry.function, "schema_version": version}
    Call.objects.create(
        entry=entry,
        outcome="miss",
        latency_ms=900.0,
        prompt_tokens=100,
        llm_model="gpt-4o-mini",
        created_at=at,
        **common,
    )
    for minute in range(3):
        Call.objects.create(
            entry=entry,
            outcome="hit",
            latency_ms=0.05,
            created_at=at + dt.timedelta(minutes=minute),
            **common,
        )

    new = migrate(AFTER).loader.project_state(AFTER).apps
    rollups = new.get_model("extractor", "CallRollup").objects

    hits = rollups.get(span="hour", outcome="hit")
    assert (hits.calls, hits.itemised, hits.llm_model) == (3, 3, "gpt-4o-mini")
    assert hits.bucket_start == at.replace(minute=0)
    assert hits.prompt_tokens == 3 * 100  # what the three hits saved
    assert rollups.get(span="hour", outcome="miss").calls == 1
    assert rollups.filter(span="day").count() == 2
    migrate([("extractor", latest())])  # leave the database as the other tests expect it


def latest() -> str:
    executor = MigrationExecutor(connection)
    return max(name for app, name in executor.loader.graph.leaf_nodes() if app == "extractor")
