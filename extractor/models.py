"""The inspection store: what is cached, every call, schema versions, invalidations.

The backend serves values; these tables index them so pages can filter,
explain and invalidate with indexed queries instead of scanning the backend.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from extractor.caching import events


class SchemaVersion(models.Model):
    """One JSON-schema fingerprint of a response model, numbered v1, v2... per name."""

    name = models.CharField(max_length=255, help_text="Dotted path of the response model.")
    number = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64)
    json_schema = models.JSONField()
    # The model's field names in declaration order: a JSON array keeps its order
    # where PostgreSQL's jsonb re-sorts the keys of `json_schema`.
    field_order = models.JSONField(default=list)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "number"]
        constraints = [
            models.UniqueConstraint(fields=["name", "fingerprint"], name="schema_version_once"),
            models.UniqueConstraint(fields=["name", "number"], name="schema_version_number_once"),
        ]

    def __str__(self) -> str:
        return f"{self.short_name} v{self.number}"

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def label(self) -> str:
        return f"v{self.number}"


class CachedFunction(models.Model):
    """A decorated function as last seen: its current code and schema."""

    name = models.CharField(max_length=255, unique=True, help_text='"module:qualname"')
    code_fingerprint = models.CharField(max_length=64)
    version = models.CharField(max_length=100, blank=True)
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.PROTECT, related_name="+")
    backend = models.CharField(max_length=255, blank=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Invalidation(models.Model):
    """One request to drop cached values, kept as history (who, when, what)."""

    class Action(models.TextChoices):
        ENTRY = "entry", "One entry"
        SCHEMA_VERSION = "schema_version", "Schema version"
        FUNCTION = "function", "Function"
        MODEL = "model", "LLM model"
        STALE = "stale", "Every stale entry"
        # The Entries page's filters, kept as their query string ("function=...&state=stale").
        SELECTION = "selection", "Filtered entries"

    class Status(models.TextChoices):
        # Waiting for a worker to take its job (services.invalidation, extractor.tasks).
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed, retry to finish"

    action = models.CharField(max_length=20, choices=Action.choices)
    # Long enough for a selection's query string (a 200-character search and the filters).
    target = models.CharField(max_length=2000, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    matched = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # When its rows were marked (one UPDATE, done by the job): a retry must not mark again,
    # or it would take in entries stored after the invalidation was asked for.
    marked_at = models.DateTimeField(null=True, blank=True)
    # The lease: the run that holds it (a token per run) and when it last made progress.
    # Only the holder may write progress, so two jobs for one invalidation never both work
    # on it; a RUNNING or QUEUED one with an old heartbeat was cut off and may be retried.
    claimed_by = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target}".strip()


class Entry(models.Model):
    """One stored value under one key. A key's earlier values stay as history."""

    class Status(models.TextChoices):
        LIVE = "live", "Live"
        # Marked for invalidation; its backend delete has not been confirmed yet.
        INVALIDATING = "invalidating", "Invalidating"
        INVALIDATED = "invalidated", "Invalidated"
        # A later value was stored under the same key (after expiry, corruption, replay).
        REPLACED = "replaced", "Replaced"

    key = models.CharField(max_length=64, db_index=True)
    namespace = models.CharField(max_length=100, blank=True)
    function = models.CharField(max_length=255, db_index=True)
    schema_version = models.ForeignKey(
        SchemaVersion, on_delete=models.PROTECT, related_name="entries"
    )
    code_fingerprint = models.CharField(max_length=64)
    version = models.CharField(max_length=100, blank=True)
    # The function and its arguments without the model argument: entries that
    # answer "the same question" share it, which is how a miss gets explained.
    input_fingerprint = models.CharField(max_length=64, db_index=True)
    arguments = models.JSONField(null=True, help_text="Null when first seen on a hit.")
    input_preview = models.CharField(max_length=300, blank=True)
    output = models.JSONField()
    llm_provider = models.CharField(max_length=50, blank=True)
    llm_model = models.CharField(max_length=100, blank=True, db_index=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    # Prompt tokens written to the provider's prompt cache (Anthropic bills them above
    # the input price), all of them; and the part written with the 1-hour TTL. Database
    # defaults too: the recorder's fast inserts name their columns.
    cache_write_tokens = models.PositiveIntegerField(default=0, db_default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0, db_default=0)
    # The context document the call was sent with (Document.sha256), if any.
    document_sha = models.CharField(
        max_length=64, blank=True, default="", db_default="", db_index=True
    )
    latency_ms = models.FloatField(default=0, help_text="What the LLM call behind it took.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_hit_at = models.DateTimeField(null=True, blank=True, db_index=True)
    hit_count = models.PositiveIntegerField(default=0, db_index=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.LIVE, db_index=True
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    invalidation = models.ForeignKey(
        Invalidation, null=True, blank=True, on_delete=models.SET_NULL, related_name="entries"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(status="live"), name="one_live_entry_per_key"
            ),
        ]
        indexes = [
            models.Index(fields=["function", "input_fingerprint", "created_at"]),
            # The entries list pages by keyset in (sort value, id) order: these let
            # PostgreSQL start its walk at the cursor and read the page in index
            # order (ties of hit_count are common: its single-column index cannot
            # order them by id). Migration 0005 also adds the text search index.
            models.Index(fields=["last_hit_at", "id"], name="extractor_entry_lasthit_id"),
            models.Index(fields=["hit_count", "id"], name="extractor_entry_hits_id"),
            # Live (or any status's) entries of one schema version, counted without
            # reading the rows: the Schemas page and an invalidation's confirm page.
            models.Index(fields=["schema_version", "status"], name="extractor_entry_version_st"),
            # An invalidation's entries in id order: its job's chunks (migration 0010).
            models.Index(fields=["invalidation", "id"], name="extractor_entry_inval_id"),
        ]

    def __str__(self) -> str:
        return f"{self.function} {self.key[:12]}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def output_in_field_order(self) -> Any:
        """The output with its fields in the model's order (PostgreSQL's jsonb sorts keys)."""
        order = self.schema_version.field_order
        if not isinstance(self.output, dict) or not isinstance(order, list):
            return self.output
        ordered = {name: self.output[name] for name in order if name in self.output}
        ordered.update((name, value) for name, value in self.output.items() if name not in ordered)
        return ordered


class Call(models.Model):
    """One invocation of a decorated function."""

    class Outcome(models.TextChoices):
        HIT = events.Outcome.HIT, "Hit"
        MISS = events.Outcome.MISS, "Miss"
        ERROR = events.Outcome.ERROR, "Error"
        BYPASS = events.Outcome.BYPASS, "Bypass"
        REPLAY = events.Outcome.REPLAY, "Replay"

    class MissReason(models.TextChoices):
        NEW_INPUT = events.MissReason.NEW_INPUT, "New input"
        SCHEMA_CHANGED = events.MissReason.SCHEMA_CHANGED, "Schema changed"
        CODE_CHANGED = events.MissReason.CODE_CHANGED, "Code changed"
        VERSION_CHANGED = events.MissReason.VERSION_CHANGED, "Version changed"
        STATE_CHANGED = events.MissReason.STATE_CHANGED, "Environment or settings changed"
        MODEL_CHANGED = events.MissReason.MODEL_CHANGED, "Model changed"
        EXPIRED = events.MissReason.EXPIRED, "Expired"
        EVICTED = events.MissReason.EVICTED, "Evicted from the backend"
        INVALIDATED = events.MissReason.INVALIDATED, "Invalidated"
        CORRUPT = events.MissReason.CORRUPT, "Corrupt value"
        BACKEND_ERROR = events.MissReason.BACKEND_ERROR, "Backend error"

    entry = models.ForeignKey(
        Entry, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    # Calls are written at hit rates, so every index here is paid per hit: the
    # composite indexes below serve the call log's filters and, (key,
    # created_at), an entry's calls (all of them: a failed call of the key has
    # no entry), newest first.
    key = models.CharField(max_length=64)
    function = models.CharField(max_length=255)
    schema_version = models.ForeignKey(
        SchemaVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="calls",
        db_index=False,
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    miss_reason = models.CharField(max_length=20, choices=MissReason.choices, blank=True)
    reason_detail = models.CharField(max_length=255, blank=True)
    latency_ms = models.FloatField()
    llm_provider = models.CharField(max_length=50, blank=True)
    llm_model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0, db_default=0)  # as on Entry
    cache_write_1h_tokens = models.PositiveIntegerField(default=0, db_default=0)
    document_sha = models.CharField(
        max_length=64, blank=True, default="", db_default=""
    )  # indexed with created_at
    input_preview = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # An entry's calls, newest first (the entry page pages through them).
            models.Index(fields=["key", "created_at"]),
            models.Index(fields=["function", "created_at"]),
            models.Index(fields=["outcome", "created_at"]),
            # The call log by model, newest first, however rare the model (else a
            # walk of the whole log for one with few calls), and the model filter's
            # choices read one index entry per model (selectors/distinct.py).
            models.Index(fields=["llm_model", "created_at"], name="extractor_call_model_at"),
            # A document's calls, newest first (the Documents page).
            models.Index(fields=["document_sha", "created_at"], name="extractor_call_document_at"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} {self.function}"


class Replay(models.Model):
    """An entry's call re-run against the LLM, bypassing the cache, kept for its diff."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="replays")
    output = models.JSONField()
    llm_model = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Kept so that accepting the replay stores the same usage the entry would have.
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0, db_default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0, db_default=0)
    latency_ms = models.FloatField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Set when the user chose the fresh output over the cached one.
    accepted_at = models.DateTimeField(null=True, blank=True)
    replacement = models.ForeignKey(
        Entry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"replay of entry {self.entry_id}"


# Upper bounds (ms) of the latency distribution's buckets; the last bucket is open.
LATENCY_BOUNDS_MS = (0.1, 1.0, 10.0, 100.0, 1_000.0, 3_000.0, 10_000.0, 30_000.0)


class CallRollup(models.Model):
    """Exact counters of the calls of one hour (or one local day) x function x
    schema version x model x outcome.

    Every call is counted here, itemised in the call log or not, so the overview
    reads these few rows rather than the call log, and they outlive the call
    log's retention. For hits the token and latency columns hold what the
    entries that served them had cost (what the hits saved), and `llm_model` is
    those entries' model; for every other outcome they hold the call's own usage.
    """

    class Span(models.TextChoices):
        HOUR = "hour", "Hour"
        # A calendar day in settings.TIME_ZONE at the time of writing.
        DAY = "day", "Day"

    span = models.CharField(max_length=4, choices=Span.choices)
    bucket_start = models.DateTimeField()
    function = models.CharField(max_length=255)
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.PROTECT, related_name="+")
    llm_model = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=10, choices=Call.Outcome.choices)
    calls = models.BigIntegerField(default=0)
    # Of `calls`, those with a row in the call log; the rest were counted only.
    itemised = models.BigIntegerField(default=0)
    # Hits whose entry row was unknown: counted, but what they saved is not.
    without_entry = models.BigIntegerField(default=0)
    # Hits only: of `calls`, those that waited for another caller's computation of
    # the same key (a thread, task or process; single-flight) instead of calling
    # the LLM themselves.
    coalesced = models.BigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0)
    latency_ms_max = models.FloatField(default=0)
    # How many calls took at most LATENCY_BOUNDS_MS[i] (and more than the bound
    # before it); the last column counts the rest.
    latency_under_0_1ms = models.BigIntegerField(default=0)
    latency_under_1ms = models.BigIntegerField(default=0)
    latency_under_10ms = models.BigIntegerField(default=0)
    latency_under_100ms = models.BigIntegerField(default=0)
    latency_under_1s = models.BigIntegerField(default=0)
    latency_under_3s = models.BigIntegerField(default=0)
    latency_under_10s = models.BigIntegerField(default=0)
    latency_under_30s = models.BigIntegerField(default=0)
    latency_over_30s = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_prompt_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0, db_default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0, db_default=0)
    # Hits only: the LLM latency of the entries that served them.
    original_latency_ms_sum = models.FloatField(default=0)

    class Meta:
        ordering = ["span", "bucket_start"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "span",
                    "bucket_start",
                    "function",
                    "schema_version",
                    "llm_model",
                    "outcome",
                ],
                name="one_rollup_per_bucket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.span} {self.bucket_start:%Y-%m-%d %H:%M} {self.function} {self.outcome}"


# CallRollup's distribution columns, in LATENCY_BOUNDS_MS order, the open bucket last.
LATENCY_COLUMNS = (
    "latency_under_0_1ms",
    "latency_under_1ms",
    "latency_under_10ms",
    "latency_under_100ms",
    "latency_under_1s",
    "latency_under_3s",
    "latency_under_10s",
    "latency_under_30s",
    "latency_over_30s",
)


class DroppedRecords(models.Model):
    """Call records a process could not write (written later, when it could).

    The counters never lose a call; what is counted here lost its row in the
    call log and, for a miss, its entry row: the overview shows the total.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    count = models.BigIntegerField()
    process = models.CharField(max_length=255, help_text="host:pid")
    reason = models.CharField(max_length=255)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "dropped records"

    def __str__(self) -> str:
        return f"{self.count} dropped by {self.process}"


class Document(models.Model):
    """A context document sent before the question (a contract, a book), stored once.

    Calls and entries name it by `sha256` (their `document_sha`), so the pages group
    them by document; the provider caches the prompt prefix it makes.
    """

    sha256 = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    text = models.TextField()
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
