"""Entries: staleness, list filters, invalidation scopes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import OrderBy
from django.utils import timezone

from extractor.models import CachedFunction, Call, Entry, Invalidation


def stale_condition() -> Exists:
    """True when the entry's code or schema version is not its function's current one."""
    return Exists(
        CachedFunction.objects.filter(name=OuterRef("function")).exclude(
            code_fingerprint=OuterRef("code_fingerprint"),
            schema_version_id=OuterRef("schema_version_id"),
        )
    )


def with_staleness(entries: QuerySet[Entry]) -> QuerySet[Entry]:
    return entries.annotate(is_stale=stale_condition())


class EntryState:
    LIVE = "live"
    STALE = "stale"
    EXPIRED = "expired"
    INVALIDATED = "invalidated"
    REPLACED = "replaced"
    ALL = "all"

    CHOICES = [
        (LIVE, "Live"),
        (STALE, "Stale"),
        (EXPIRED, "Expired"),
        (INVALIDATED, "Invalidated"),
        (REPLACED, "Replaced"),
        (ALL, "All"),
    ]


def entries_in_state(entries: QuerySet[Entry], state: str) -> QuerySet[Entry]:
    now = timezone.now()
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    if state == EntryState.LIVE:
        return entries.filter(unexpired, status=Entry.Status.LIVE).exclude(stale_condition())
    if state == EntryState.STALE:
        return entries.filter(stale_condition(), status=Entry.Status.LIVE)
    if state == EntryState.EXPIRED:
        return entries.filter(status=Entry.Status.LIVE, expires_at__lte=now)
    if state == EntryState.INVALIDATED:
        return entries.filter(status__in=[Entry.Status.INVALIDATED, Entry.Status.INVALIDATING])
    if state == EntryState.REPLACED:
        return entries.filter(status=Entry.Status.REPLACED)
    return entries


@dataclass(frozen=True)
class EntryFilters:
    function: str = ""
    schema: str = ""  # a SchemaVersion name
    schema_version: int | None = None  # a SchemaVersion pk
    llm_model: str = ""
    state: str = EntryState.LIVE
    search: str = ""
    sort: str = "-last_hit_at"


SORTS: dict[str, tuple[str, list[OrderBy | str]]] = {
    # Never-hit entries last on every database (PostgreSQL puts NULLs first by default).
    "-last_hit_at": ("Last hit", [F("last_hit_at").desc(nulls_last=True), "-created_at"]),
    "-hit_count": ("Hits", ["-hit_count", "-created_at"]),
    "-created_at": ("Newest", ["-created_at"]),
    "created_at": ("Oldest", ["created_at"]),
}


def entry_list(filters: EntryFilters) -> QuerySet[Entry]:
    entries = Entry.objects.select_related("schema_version", "invalidation")
    if filters.function:
        entries = entries.filter(function=filters.function)
    if filters.schema:
        entries = entries.filter(schema_version__name=filters.schema)
    if filters.schema_version:
        entries = entries.filter(schema_version_id=filters.schema_version)
    if filters.llm_model:
        entries = entries.filter(llm_model=filters.llm_model)
    if filters.search:
        entries = entries.filter(_search(filters.search))
    entries = entries_in_state(entries, filters.state)
    order = SORTS.get(filters.sort, SORTS["-last_hit_at"])[1]
    return with_staleness(entries).order_by(*order, "-id")


def _search(text: str) -> Q:
    """Input and output text. The JSON columns are searched as their serialized text."""
    return (
        Q(input_preview__icontains=text)
        | Q(arguments__icontains=text)
        | Q(output__icontains=text)
        | Q(key__startswith=text.lower())
    )


def entry_detail(pk: int) -> QuerySet[Entry]:
    return with_staleness(Entry.objects.select_related("schema_version", "invalidation")).filter(
        pk=pk
    )


def entry_history(entry: Entry) -> QuerySet[Entry]:
    """Earlier and later values of the same question (function and input)."""
    if not entry.input_fingerprint:
        return Entry.objects.filter(key=entry.key).exclude(pk=entry.pk)
    return (
        Entry.objects.filter(function=entry.function, input_fingerprint=entry.input_fingerprint)
        .exclude(pk=entry.pk)
        .select_related("schema_version")
        .order_by("-created_at")
    )


# -- invalidation scopes ------------------------------------------------------------


@dataclass(frozen=True)
class InvalidationScope:
    action: str  # an Invalidation.Action value
    target: str = ""  # entry pk, schema version pk, function name or model name

    def describe(self) -> str:
        action = Invalidation.Action(self.action)
        if action == Invalidation.Action.STALE:
            return "every stale entry"
        if action == Invalidation.Action.SCHEMA_VERSION:
            from extractor.models import SchemaVersion

            version = SchemaVersion.objects.filter(pk=self.target).first()
            return f"schema {version}" if version else f"schema version #{self.target}"
        if action == Invalidation.Action.ENTRY:
            return f"entry #{self.target}"
        if action == Invalidation.Action.MODEL:
            return f"LLM model {self.target}"
        return f"{action.label.lower()} {self.target}"


def entries_in_scope(scope: InvalidationScope) -> QuerySet[Entry]:
    """The live entries an invalidation of `scope` acts on."""
    live = Entry.objects.filter(status=Entry.Status.LIVE)
    action = scope.action
    if action == Invalidation.Action.ENTRY:
        return live.filter(pk=_int(scope.target))
    if action == Invalidation.Action.SCHEMA_VERSION:
        return live.filter(schema_version_id=_int(scope.target))
    if action == Invalidation.Action.FUNCTION:
        return live.filter(function=scope.target)
    if action == Invalidation.Action.MODEL:
        return live.filter(llm_model=scope.target)
    if action == Invalidation.Action.STALE:
        return live.filter(stale_condition())
    raise ValueError(f"unknown invalidation action {action!r}")


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an id") from None


# -- one entry's page ---------------------------------------------------------------


def entry_calls(entry: Entry) -> QuerySet[Call]:
    """Every call that used the entry, and the misses and errors of its key, newest first.

    Every such call has the entry's key: the database walks the (key, created_at)
    index newest first and stops at the page's end, however many calls the key has.
    """
    return (
        Call.objects.filter(key=entry.key)
        .filter(Q(entry=entry) | Q(function=entry.function))
        .select_related("schema_version")
        .order_by("-created_at", "-id")
    )


def entry_function_now(entry: Entry) -> CachedFunction | None:
    """The entry's function as last seen: what a stale entry is compared with."""
    return (
        CachedFunction.objects.filter(name=entry.function).select_related("schema_version").first()
    )


def entry_replacement(entry: Entry) -> Entry | None:
    """The value that took a replaced entry's place: an accepted replay's, or its key's next."""
    replay = entry.replays.filter(replacement__isnull=False).select_related("replacement").first()
    if replay is not None:
        return replay.replacement
    return (
        Entry.objects.filter(key=entry.key, created_at__gte=entry.created_at)
        .exclude(pk=entry.pk)
        .order_by("created_at", "id")
        .first()
    )
