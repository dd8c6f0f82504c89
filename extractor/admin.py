from __future__ import annotations

from typing import TypeVar

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from extractor.models import (
    CachedFunction,
    Call,
    CallRollup,
    Document,
    DroppedRecords,
    Entry,
    Invalidation,
    Replay,
    SchemaVersion,
)

_M = TypeVar("_M", bound=models.Model)


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """Shows rows, never writes them. Cached rows mirror the cache backend: an edit here
    would change what the dashboard shows while callers keep getting the stored value, and
    a delete would leave the value cached with no row. Use Invalidate instead."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


@admin.register(SchemaVersion)
class SchemaVersionAdmin(ReadOnlyAdmin[SchemaVersion]):
    list_display = ["name", "number", "fingerprint", "first_seen_at"]
    list_filter = ["name"]
    search_fields = ["name", "fingerprint"]


@admin.register(CachedFunction)
class CachedFunctionAdmin(ReadOnlyAdmin[CachedFunction]):
    list_display = ["name", "schema_version", "version", "code_fingerprint", "last_seen_at"]
    search_fields = ["name"]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin[Entry]):
    list_display = [
        "key",
        "function",
        "schema_version",
        "llm_model",
        "status",
        "hit_count",
        "created_at",
        "last_hit_at",
    ]
    list_filter = ["status", "function", "llm_model"]
    search_fields = ["key", "input_preview"]
    list_select_related = ["schema_version"]
    raw_id_fields = ["schema_version", "invalidation"]


@admin.register(Call)
class CallAdmin(ReadOnlyAdmin[Call]):
    list_display = ["created_at", "outcome", "miss_reason", "function", "llm_model", "latency_ms"]
    list_filter = ["outcome", "miss_reason", "function", "llm_model"]
    search_fields = ["key", "input_preview"]
    raw_id_fields = ["entry", "schema_version"]
    date_hierarchy = "created_at"


@admin.register(Invalidation)
class InvalidationAdmin(ReadOnlyAdmin[Invalidation]):
    list_display = [
        "created_at",
        "action",
        "target",
        "requested_by",
        "status",
        "matched",
        "removed",
    ]
    list_filter = ["action", "status"]


@admin.register(Replay)
class ReplayAdmin(ReadOnlyAdmin[Replay]):
    list_display = ["created_at", "entry", "llm_model", "requested_by", "accepted_at"]
    list_filter = ["llm_model"]
    raw_id_fields = ["entry", "replacement"]


@admin.register(CallRollup)
class CallRollupAdmin(ReadOnlyAdmin[CallRollup]):
    """The counters are added to by the recorders, never edited or deleted by hand."""

    list_display = ["span", "bucket_start", "function", "llm_model", "outcome", "calls", "itemised"]
    list_filter = ["span", "outcome", "llm_model"]
    search_fields = ["function"]
    date_hierarchy = "bucket_start"


@admin.register(DroppedRecords)
class DroppedRecordsAdmin(ReadOnlyAdmin[DroppedRecords]):
    list_display = ["at", "count", "process", "reason"]
    date_hierarchy = "at"


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin[Document]):
    list_display = ["name", "size_bytes", "sha256", "created_at"]
    search_fields = ["name", "sha256"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Document]:
        # A document may be megabytes: the list reads its name, the text only when shown.
        return super().get_queryset(request).defer("text")
