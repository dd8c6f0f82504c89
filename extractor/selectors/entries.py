"""Entries: staleness, list filters, invalidation scopes."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from urllib.parse import parse_qsl, urlencode

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet, Value
from django.utils import timezone

from extractor.models import CachedFunction, Call, Entry, Invalidation
from extractor.selectors.counting import Tally, count_or_estimate
from extractor.selectors.distinct import distinct_values
from extractor.selectors.keyset import (
    Cursor,
    KeysetPage,
    Ordering,
    SortKey,
    keyset_page,
    parse_cursor,
)
from extractor.selectors.search import entry_text_search

# Each known function's current (code fingerprint, schema version id).
CurrentCode = dict[str, tuple[str, int]]


def current_code() -> CurrentCode:
    rows = CachedFunction.objects.values_list("name", "code_fingerprint", "schema_version_id")
    return {name: (code, version) for name, code, version in rows}


def stale_condition(current: CurrentCode | None = None) -> Q:
    """True when the entry's code or schema version is not its function's current one.

    Spelled out from the functions' rows (a few, read here) rather than as a
    correlated NOT EXISTS: PostgreSQL cannot estimate an anti-join on "differs
    from", took every entry for stale and answered the first page of live entries
    with a sort of the whole table. As plain values, with the extended statistics
    on (function, code_fingerprint, schema_version_id) of migration 0005, it
    estimates them closely, walks the sort's index and counts "about" rightly.
    """
    current = current_code() if current is None else current
    branches = [
        Q(function=name) & ~Q(code_fingerprint=code, schema_version_id=version)
        for name, (code, version) in current.items()
    ]
    return reduce(operator.or_, branches) if branches else Q(pk__in=[])


def is_stale(entry: Entry, current: CurrentCode) -> bool:
    now = current.get(entry.function)
    return now is not None and now != (entry.code_fingerprint, entry.schema_version_id)


def with_staleness(entries: QuerySet[Entry]) -> QuerySet[Entry]:
    stale = stale_condition()
    if stale == Q(pk__in=[]):
        return entries.annotate(is_stale=Value(False))
    return entries.annotate(is_stale=ExpressionWrapper(stale, output_field=BooleanField()))


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


def entries_in_state(
    entries: QuerySet[Entry], state: str, current: CurrentCode | None = None
) -> QuerySet[Entry]:
    now = timezone.now()
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    if state == EntryState.LIVE:
        return entries.filter(unexpired, status=Entry.Status.LIVE).exclude(stale_condition(current))
    if state == EntryState.STALE:
        return entries.filter(stale_condition(current), status=Entry.Status.LIVE)
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


# Each sort pages by keyset over an index that holds its keys: (last_hit_at, id),
# (hit_count, id), created_at (PostgreSQL adds id to it with an incremental sort
# of the rare ties; SQLite's index entries end with the rowid anyway).
SORTS: dict[str, tuple[str, Ordering]] = {
    # Never-hit entries last, newest first among them.
    "-last_hit_at": (
        "Last hit",
        Ordering("last-hit", (SortKey("last_hit_at", nullable=True), SortKey("id"))),
    ),
    "-hit_count": ("Hits", Ordering("hits", (SortKey("hit_count"), SortKey("id")))),
    "-created_at": ("Newest", Ordering("newest", (SortKey("created_at"), SortKey("id")))),
    "created_at": (
        "Oldest",
        Ordering(
            "oldest", (SortKey("created_at", descending=False), SortKey("id", descending=False))
        ),
    ),
}


def entry_ordering(sort: str) -> Ordering:
    return SORTS.get(sort, SORTS[EntryFilters.sort])[1]


def entries_matching(filters: EntryFilters, current: CurrentCode | None = None) -> QuerySet[Entry]:
    """The entries the filters select, unordered (what a count reads)."""
    entries = Entry.objects.all()
    if filters.function:
        entries = entries.filter(function=filters.function)
    if filters.schema:
        entries = entries.filter(schema_version__name=filters.schema)
    if filters.schema_version:
        entries = entries.filter(schema_version_id=filters.schema_version)
    if filters.llm_model:
        entries = entries.filter(llm_model=filters.llm_model)
    if filters.search:
        entries = entries.filter(entry_text_search(filters.search))
    return entries_in_state(entries, filters.state, current)


def _for_display(entries: QuerySet[Entry]) -> QuerySet[Entry]:
    # arguments and the JSON schema are not shown, and decoding them is most of
    # reading a row.
    return entries.select_related("schema_version", "invalidation").defer(
        "arguments", "schema_version__json_schema"
    )


def entry_list(filters: EntryFilters) -> QuerySet[Entry]:
    """The whole list in the sort's order, each entry flagged `is_stale`."""
    entries = _for_display(with_staleness(entries_matching(filters)))
    return entries.order_by(*entry_ordering(filters.sort).order_by())


def entry_cursor(params: Mapping[str, str], filters: EntryFilters) -> Cursor | None:
    """The page asked for in the query string; BadCursor when it cannot be read."""
    return parse_cursor(params, entry_ordering(filters.sort), Entry)


@dataclass(frozen=True)
class EntryListing:
    page: KeysetPage[Entry]  # each entry flagged `is_stale`
    count: Tally  # of every entry the filters select


def entry_listing(filters: EntryFilters, cursor: Cursor | None, size: int) -> EntryListing:
    """One page of the list and the count of all of it.

    The filters are turned into SQL once for both (the stale condition is one
    clause per function), and staleness is flagged from the functions' rows
    rather than computed again for each row in SQL.
    """
    current = current_code()
    matching = entries_matching(filters, current)
    page = keyset_page(_for_display(matching), entry_ordering(filters.sort), cursor, size)
    for entry in page.object_list:
        entry.is_stale = is_stale(entry, current)  # type: ignore[attr-defined]
    if page.is_first and not page.has_next:
        count = Tally(len(page.object_list), exact=True)
    else:
        count = count_or_estimate(matching)
    return EntryListing(page, count)


def entry_function_names() -> list[str]:
    return distinct_values(Entry, "function")


def entry_model_names() -> list[str]:
    return distinct_values(Entry, "llm_model")


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
        if action == Invalidation.Action.SELECTION:
            return f"the filtered list ({describe_selection(selection_filters(self.target))})"
        return f"{action.label.lower()} {self.target}"


# -- a filtered selection as an invalidation's target -------------------------------

# The list's filters, as the Entries page's query string names them; the sort and
# the page cursor do not change which entries are selected.
SELECTION_PARAMS = ("function", "schema", "schema_version", "model", "state", "q")


def selection_query(filters: EntryFilters) -> str:
    """The filters as a short, canonical query string: an invalidation's target."""
    values = {
        "function": filters.function,
        "schema": filters.schema,
        "schema_version": str(filters.schema_version or ""),
        "model": filters.llm_model,
        "state": filters.state,
        "q": filters.search,
    }
    return urlencode([(name, values[name]) for name in SELECTION_PARAMS if values[name]])


def selection_filters(query: str) -> EntryFilters:
    """Filters back from selection_query's string (which the form validated when the
    invalidation was asked for)."""
    params = dict(parse_qsl(query))
    version = params.get("schema_version", "")
    return EntryFilters(
        function=params.get("function", ""),
        schema=params.get("schema", ""),
        schema_version=int(version) if version.isascii() and version.isdigit() else None,
        llm_model=params.get("model", ""),
        state=params.get("state") or EntryState.LIVE,
        search=params.get("q", ""),
    )


def describe_selection(filters: EntryFilters) -> str:
    """'live entries of extract_UserDetail, from model gpt-4o, matching
    "Jason"': the filters in the words and names the pages use."""
    from extractor.models import SchemaVersion
    from extractor.selectors.display_names import display_names

    names = display_names()
    state = dict(EntryState.CHOICES).get(filters.state, filters.state).lower()
    words = "all entries" if filters.state == EntryState.ALL else f"{state} entries"
    parts = []
    if filters.function:
        parts.append(f"of {names.function(filters.function)}")
    if filters.schema:
        parts.append(f"of schema {names.schema(filters.schema)}")
    if filters.schema_version:
        version = SchemaVersion.objects.filter(pk=filters.schema_version).first()
        shown = names.schema_version(version) if version else f"#{filters.schema_version}"
        parts.append(f"of schema {shown}")
    if filters.llm_model:
        parts.append(f"from model {filters.llm_model}")
    if filters.search:
        parts.append(f'matching "{filters.search}"')
    return " ".join([words, ", ".join(parts)]) if parts else words


def entries_in_scope(scope: InvalidationScope) -> QuerySet[Entry]:
    """The live entries an invalidation of `scope` acts on."""
    live = Entry.objects.filter(status=Entry.Status.LIVE)
    action = scope.action
    if action == Invalidation.Action.SELECTION:
        # Whatever the page shows (live, stale, expired or all): only values still
        # stored can be invalidated, so an "invalidated" selection touches none.
        return entries_matching(selection_filters(scope.target)).filter(status=Entry.Status.LIVE)
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
