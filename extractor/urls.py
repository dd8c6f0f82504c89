from django.urls import path

from extractor.views import (
    calls,
    documents,
    entries,
    entry_detail,
    export,
    extract,
    invalidate,
    overview,
    replay,
    schemas,
)

app_name = "extractor"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("extract/", extract.extract, name="extract"),
    path("entries/", entries.entry_list, name="entries"),
    path("entries/export.csv", export.entry_export, {"fmt": "csv"}, name="entries-csv"),
    path("entries/export.jsonl", export.entry_export, {"fmt": "jsonl"}, name="entries-jsonl"),
    path("entries/<int:pk>/", entry_detail.entry_detail, name="entry"),
    path("entries/<int:pk>/replay/", replay.replay_start, name="replay-start"),
    path("replays/<int:pk>/", replay.replay_detail, name="replay"),
    path("replays/<int:pk>/accept/", replay.replay_accept, name="replay-accept"),
    path("replays/<int:pk>/keep/", replay.replay_keep, name="replay-keep"),
    path("invalidate/", invalidate.invalidate, name="invalidate"),
    path("invalidations/", invalidate.invalidation_list, name="invalidations"),
    path("invalidations/<int:pk>/", invalidate.invalidation_detail, name="invalidation"),
    path("invalidations/<int:pk>/retry/", invalidate.invalidation_retry, name="invalidation-retry"),
    path("schemas/", schemas.schema_list, name="schemas"),
    path("calls/", calls.call_list, name="calls"),
    path("calls/export.csv", export.call_export, {"fmt": "csv"}, name="calls-csv"),
    path("calls/export.jsonl", export.call_export, {"fmt": "jsonl"}, name="calls-jsonl"),
    path("documents/", documents.document_list, name="documents"),
    path("documents/<int:pk>/", documents.document_detail, name="document"),
]
