"""Forms: what a page accepts, with errors a person can act on."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MinValueValidator
from django.http import QueryDict
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from extractor.extraction import CACHE_TTLS
from extractor.llm import parse_model
from extractor.models import Entry, Invalidation, SchemaVersion
from extractor.schemas import registered_schemas
from extractor.selectors.display_names import DisplayNames, short_name, unique_names
from extractor.selectors.entries import (
    SORTS,
    EntryFilters,
    EntryState,
    InvalidationScope,
    entry_function_names,
    entry_model_names,
    selection_query,
)


class LLMModelField(forms.ChoiceField):
    """A "provider/model" choice that also takes the same model spelled otherwise:
    "gpt-4o-mini" for a listed "openai/gpt-4o-mini" (scripts and links from before
    providers were named)."""

    def valid_value(self, value: Any) -> bool:
        if super().valid_value(value):
            return True
        chosen = parse_model(str(value))
        choices = cast("list[tuple[str, str]]", self.choices)  # flat: ExtractForm sets them
        return any(parse_model(choice) == chosen for choice, _label in choices)


class ExtractForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "Jason is 25 years old."}),
        strip=True,
        error_messages={"required": "Enter some text to extract from."},
    )
    schema = forms.ChoiceField(help_text="The response model to extract.")
    model = LLMModelField(label="LLM model", help_text="As provider/model.")
    document = forms.CharField(
        required=False,
        label="Document (optional)",
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A contract, a book: asked many questions."}
        ),
        strip=True,
    )
    document_file = forms.FileField(
        required=False,
        label="…or upload it as a .txt file",
        widget=forms.FileInput(attrs={"accept": ".txt,text/plain"}),
    )
    cache_ttl = forms.ChoiceField(
        required=False,  # a client that does not send it gets the default
        label="Provider prompt cache",
        initial="5m",
        help_text="How long Anthropic keeps the document cached (a 1-hour write costs more); "
        "OpenAI caches by itself.",
    )
    refresh = forms.BooleanField(
        required=False,
        label="Refresh: skip the cache and call the LLM",
        help_text="Recorded as a bypass. The fresh answer is shown, not stored: "
        "the cached value stays as it is (replay an entry to replace it).",
    )

    # The uploaded file's name, without ".txt" (set while cleaning).
    document_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._choose("schema", [(name, name) for name in registered_schemas()])
        self._choose("model", [(name, name) for name in settings.EXTRACTOR_MODELS])
        self.fields["model"].initial = settings.EXTRACTOR_DEFAULT_MODEL
        self._choose("cache_ttl", [(ttl, f"{shown} (TTL)") for ttl, shown in CACHE_TTLS.items()])
        limit = settings.EXTRACTOR_MAX_TEXT_BYTES
        # extract-shortcuts.js makes the shortcut work.
        self.fields["text"].help_text = f"Up to {filesizeformat(limit)}. Ctrl+Enter to run."
        self.fields["document"].help_text = (
            "A context document sent before the text, cached by the provider across "
            f"questions. Up to {filesizeformat(settings.EXTRACTOR_MAX_DOCUMENT_BYTES)}."
        )

    def _choose(self, name: str, choices: list[tuple[str, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        size = len(text.encode("utf-8"))
        limit = settings.EXTRACTOR_MAX_TEXT_BYTES
        if size > limit:
            raise forms.ValidationError(
                f"The text is {filesizeformat(size)}; the limit is {filesizeformat(limit)} "
                "(EXTRACTOR_MAX_TEXT_BYTES)."
            )
        return text

    def clean_document(self) -> str:
        text: str = self.cleaned_data["document"]
        _check_document_size(len(text.encode("utf-8")))
        return text

    def clean_document_file(self) -> str | None:
        """The uploaded document's text (None without a file)."""
        upload = self.cleaned_data.get("document_file")
        if not upload:
            return None
        if not str(upload.name).lower().endswith(".txt"):
            raise forms.ValidationError("Upload the context document as a .txt file.")
        _check_document_size(upload.size or 0)  # before reading it
        try:
            text: str = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise forms.ValidationError(
                "The file is not UTF-8 text: save it as UTF-8 and upload it again."
            ) from error
        self.document_name = Path(str(upload.name)).stem
        return text.strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        pasted, uploaded = cleaned.get("document") or "", cleaned.get("document_file")
        if pasted and uploaded and pasted != uploaded:
            self.add_error("document_file", "Paste the context document or upload it, not both.")
        cleaned["cache_ttl"] = cleaned.get("cache_ttl") or "5m"
        cleaned["document_text"] = uploaded or pasted
        cleaned["document_name"] = self.document_name if uploaded else ""
        return cleaned


def _check_document_size(size: int) -> None:
    limit = settings.EXTRACTOR_MAX_DOCUMENT_BYTES
    if size > limit:
        raise forms.ValidationError(
            f"The context document is {filesizeformat(size)}; the limit is "
            f"{filesizeformat(limit)} (EXTRACTOR_MAX_DOCUMENT_BYTES)."
        )


# -- invalidation & schemas ----------------------------------------------------------

# Ids are BigAutoField: a larger number overflows SQLite's driver instead of matching nothing.
MAX_ID = 2**63 - 1
# ASCII only: str.isdigit() accepts "²" (which int() refuses) and "٣" (which int() reads as 3).
_ID = re.compile(r"[0-9]+")


def parse_id(text: str) -> int | None:
    """`text` as a database id, or None when it cannot be one."""
    if not _ID.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


class InvalidateForm(forms.Form):
    """What to invalidate: an action and its target, from the query string or a POST."""

    TARGET_HELP = {
        "entry": "an entry id or key",
        "schema_version": 'a schema version ("UserDetail v2" or its id)',
        "function": 'a function name ("extract_UserDetail" or "module:qualname")',
        "model": "an LLM model name",
        "selection": "the Entries page's filters",
    }

    action = forms.ChoiceField(
        choices=Invalidation.Action.choices,
        error_messages={
            "required": "Choose what to invalidate.",
            "invalid_choice": "Unknown action %(value)s: choose one entry, a schema version, "
            "a function, an LLM model, every stale entry or a filtered selection.",
        },
    )
    target = forms.CharField(
        required=False,
        max_length=Invalidation._meta.get_field("target").max_length,
        strip=True,
        help_text="An entry id or key (at least 8 characters of it), a schema version "
        '("UserDetail v2" or its id), a function name or a model name. '
        "Leave empty for every stale entry.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        action = cleaned.get("action")
        target = cleaned.get("target", "")
        if not action:
            return cleaned
        if action == Invalidation.Action.STALE:
            cleaned["target"] = ""
            return cleaned
        if not target:
            self.add_error("target", f"Name {self.TARGET_HELP[action]} to invalidate.")
            return cleaned
        resolve = _RESOLVERS.get(action)
        if resolve is not None:
            try:
                cleaned["target"] = resolve(target)
            except forms.ValidationError as error:
                self.add_error("target", error)
        return cleaned

    def scope(self) -> InvalidationScope:
        return InvalidationScope(self.cleaned_data["action"], self.cleaned_data["target"])


# The names the pages show, read back into what an InvalidationScope holds.

# The pages show a key's first 12 characters; 8 hex digits tell ~4 billion keys apart.
_KEY_PREFIX = re.compile(r"[0-9a-f]{8,64}")
# "UserDetail v2", "v2", or as a page shows it where two schemas share a name:
# "UserDetail v2 (myapp.schemas)".
_VERSION_LABEL = re.compile(
    r"(?:(?P<name>.+?)\s+)?v(?P<number>[0-9]{1,9})(?:\s+\((?P<where>[^()]+)\))?", re.IGNORECASE
)


def resolve_entry(target: str) -> str:
    """An entry id, or a key prefix naming one key: its live entry, else its newest."""
    pk = parse_id(target)
    if pk is not None and Entry.objects.filter(pk=pk).exists():
        return str(pk)
    prefix = target.lower()
    if not _KEY_PREFIX.fullmatch(prefix):
        if pk is not None:
            raise forms.ValidationError(f"There is no entry #{pk}.")
        raise forms.ValidationError(
            f"{target!r} is not an entry id or key (at least 8 of the key's hex characters)."
        )
    # A range rather than LIKE: keys are lowercase hex, so every key with the prefix
    # sorts in [prefix, prefix + "g"), which both databases read from the key index.
    in_range = Entry.objects.filter(key__gte=prefix, key__lt=prefix + "g")
    keys = list(in_range.order_by("key").values_list("key", flat=True).distinct()[:2])
    if not keys:
        if pk is not None:
            raise forms.ValidationError(f"There is no entry #{pk} and no key starting {prefix}.")
        raise forms.ValidationError(
            f"{target!r} is not an entry id, and no entry's key starts with it."
        )
    if len(keys) > 1:
        raise forms.ValidationError(
            f"{prefix} starts more than one key ({keys[0][:16]}…, {keys[1][:16]}…): "
            "give more of the key."
        )
    of_key = Entry.objects.filter(key=keys[0])
    entry = (
        of_key.filter(status=Entry.Status.LIVE).first() or of_key.order_by("-created_at").first()
    )
    assert entry is not None
    return str(entry.pk)


def resolve_schema_version(target: str) -> str:
    """A schema version id, or its label as the pages show it: "UserDetail v2" (the
    short or full schema name, any case), or "v2" when one schema has a version 2."""
    pk = parse_id(target)
    if pk is not None:
        if not SchemaVersion.objects.filter(pk=pk).exists():
            raise forms.ValidationError(f"There is no schema version #{pk}.")
        return str(pk)
    label = _VERSION_LABEL.fullmatch(target)
    if label is None:
        raise forms.ValidationError(
            f'{target!r} is not a schema version: name one as "UserDetail v2" or by its id.'
        )
    name = label["name"] or ""
    if label["where"]:
        name = f"{label['where']}.{name}"
    versions = SchemaVersion.objects.filter(number=int(label["number"]))
    candidates = [
        version
        for version in versions.order_by("name")
        if not name or name.lower() in (version.name.lower(), short_name(version.name).lower())
    ]
    if not candidates:
        raise forms.ValidationError(f"There is no schema version {target!r}.")
    if len(candidates) > 1:
        listed = ", ".join(f"{version} ({version.name}, #{version.pk})" for version in candidates)
        raise forms.ValidationError(
            f"{target!r} names more than one schema version: {listed}. Give its id."
        )
    return str(candidates[0].pk)


def resolve_function(target: str) -> str:
    """A function's full name, or its short name when no other function shares it.
    A name no function row has is kept: entries may outlive their function's row."""
    from extractor.models import CachedFunction

    names = list(CachedFunction.objects.values_list("name", flat=True))
    if target in names:
        return target
    # As a page shows it where two functions share a short name: "extract (app.tasks)".
    shown = {display: name for name, display in unique_names(names).items()}
    if target in shown:
        return shown[target]
    candidates = sorted(name for name in names if short_name(name) == target)
    if len(candidates) > 1:
        raise forms.ValidationError(
            f"{target!r} names more than one function: {', '.join(candidates)}. Give the full name."
        )
    return candidates[0] if candidates else target


def resolve_selection(target: str) -> str:
    """The Entries page's query string, checked by its own form, as a canonical one."""
    form = EntryFilterForm(QueryDict(target))
    if not form.is_valid():
        problems = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        raise forms.ValidationError(f"The Entries filters cannot be read: {problems}")
    return selection_query(form.filters())


_RESOLVERS = {
    Invalidation.Action.SELECTION: resolve_selection,
    Invalidation.Action.ENTRY: resolve_entry,
    Invalidation.Action.SCHEMA_VERSION: resolve_schema_version,
    Invalidation.Action.FUNCTION: resolve_function,
}


class SchemaCompareForm(forms.Form):
    """Two versions of one schema to compare (`a` the older side, `b` the newer)."""

    name = forms.CharField(required=False, max_length=255)
    a = forms.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "required": "Choose a version to compare from.",
            "invalid": "Version ids are whole numbers.",
            "max_value": "Version ids are whole numbers up to %(limit_value)s.",
        },
    )
    b = forms.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "required": "Choose a version to compare with.",
            "invalid": "Version ids are whole numbers.",
            "max_value": "Version ids are whole numbers up to %(limit_value)s.",
        },
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        versions = SchemaVersion.objects.in_bulk([cleaned["a"], cleaned["b"]])
        missing = [f"#{pk}" for pk in (cleaned["a"], cleaned["b"]) if pk not in versions]
        if missing:
            raise forms.ValidationError(f"There is no schema version {' or '.join(missing)}.")
        old, new = versions[cleaned["a"]], versions[cleaned["b"]]
        if old.name != new.name:
            raise forms.ValidationError(
                f"{old} and {new} are versions of different schemas; compare versions of one."
            )
        if cleaned.get("name") and cleaned["name"] != old.name:
            raise forms.ValidationError(f"{old} is not a version of {cleaned['name']}.")
        cleaned["name"] = old.name
        cleaned["old"], cleaned["new"] = old, new
        return cleaned


# -- entries ---------------------------------------------------------------------------


class EntryFilterForm(forms.Form):
    """The entries list's filters, read from the query string; choices come from the DB.

    A value that is not a choice is a form error and that filter is left out, so a
    hand-edited URL shows a message instead of failing.
    """

    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Text in the input or output, or a key"}
        ),
    )
    function = forms.ChoiceField(required=False)
    schema = forms.ChoiceField(required=False)
    schema_version = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="Schema version"
    )
    model = forms.ChoiceField(required=False, label="LLM model")
    state = forms.ChoiceField(required=False, label="Show")
    sort = forms.ChoiceField(required=False, label="Sort by")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from extractor.models import CachedFunction

        super().__init__(*args, **kwargs)
        # Entries' distinct values by loose index scans: DISTINCT would read every entry.
        functions = sorted(
            set(CachedFunction.objects.values_list("name", flat=True)) | set(entry_function_names())
        )
        self._choose("function", "All functions", _named(functions, unique_names(functions)))
        versions = list(SchemaVersion.objects.order_by("name", "number"))
        names = DisplayNames(functions={}, schemas=unique_names(v.name for v in versions))
        self._choose(
            "schema", "All schemas", _named(dict.fromkeys(v.name for v in versions), names.schemas)
        )
        self._choose(
            "schema_version",
            "All versions",
            [(str(v.pk), names.schema_version(v)) for v in versions],
        )
        models = entry_model_names()
        self._choose("model", "All models", [(model, model) for model in models])
        self._choose("state", None, EntryState.CHOICES)
        self._choose("sort", None, [(value, label) for value, (label, _) in SORTS.items()])

    def _choose(self, name: str, anything: str | None, choices: list[tuple[str, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", anything), *choices] if anything else choices

    def filters(self) -> EntryFilters:
        """The valid part of the query as EntryFilters (call after is_valid())."""
        data = getattr(self, "cleaned_data", {})
        return EntryFilters(
            function=data.get("function") or "",
            schema=data.get("schema") or "",
            schema_version=data.get("schema_version"),
            llm_model=data.get("model") or "",
            state=data.get("state") or EntryState.LIVE,
            search=data.get("q") or "",
            sort=data.get("sort") or EntryFilters.sort,
        )


# -- calls & overview ------------------------------------------------------------------

_DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _datetime_local_field(label: str, help_text: str) -> forms.DateTimeField:
    # A naive value is read in the site's time zone (TIME_ZONE), as the page shows times.
    return forms.DateTimeField(
        required=False,
        label=label,
        help_text=help_text,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_DATETIME_LOCAL),
        error_messages={"invalid": "Enter a date and time, like 2025-01-31T14:30."},
    )


def _named(values: Iterable[str], shown: dict[str, str]) -> list[tuple[str, str]]:
    """Choices that show each value by its unique display name, sorted by it."""
    return sorted(((value, shown[value]) for value in values), key=lambda choice: choice[1].lower())


class CallFilterForm(forms.Form):
    """The call log's filters, read from the query string. Every field is optional; a
    value that does not validate is reported and that filter is left out."""

    outcome = forms.ChoiceField(required=False)
    function = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False, label="LLM model")
    since = _datetime_local_field("From", "Inclusive, in the site's time zone.")
    until = _datetime_local_field("Until", "Exclusive, in the site's time zone.")

    def __init__(
        self,
        *args: Any,
        functions: list[str] | None = None,
        models: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        from extractor.models import Call

        super().__init__(*args, **kwargs)
        choices: dict[str, list[tuple[str, str]]] = {
            "outcome": [("", "Any outcome"), *Call.Outcome.choices],
            "function": [
                ("", "All functions"),
                *_named(functions or [], unique_names(functions or [])),
            ],
            "model": [("", "All models")] + [(name, name) for name in models or []],
        }
        for name, field_choices in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = field_choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "Until must be later than From.")
        return cleaned

    def filters(self) -> Any:
        """The valid part of the query as CallFilters (call after is_valid())."""
        from extractor.selectors.calls import CallFilters

        data = getattr(self, "cleaned_data", {})
        return CallFilters(
            outcome=data.get("outcome") or "",
            function=data.get("function") or "",
            llm_model=data.get("model") or "",
            since=data.get("since"),
            until=data.get("until"),
        )


class OverviewWindowForm(forms.Form):
    """?days=1|7|30|all; anything else is the default window."""

    CHOICES = [("1", "Last 24 hours"), ("7", "7 days"), ("30", "30 days"), ("all", "All time")]
    WINDOWS: dict[str, int | None] = {"1": 1, "7": 7, "30": 30, "all": None}
    DEFAULT = "7"

    days = forms.ChoiceField(required=False, choices=CHOICES)

    def window(self) -> str:
        if self.is_valid() and self.cleaned_data["days"]:
            return str(self.cleaned_data["days"])
        return self.DEFAULT

    def days_back(self) -> int | None:
        return self.WINDOWS[self.window()]


class OverviewRangeForm(forms.Form):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD: whole days in the site's time zone, `to` included.

    Bound only when the query names either date; otherwise the window links apply.
    """

    MAX_DAYS = 3 * 365 + 1  # three years, a leap day included
    EARLIEST = "2000-01-01"  # also keeps the day arithmetic clear of year 1

    def __init__(self, query: Any = None, **kwargs: Any) -> None:
        asked = query is not None and ("from" in query or "to" in query)
        super().__init__(query if asked else None, **kwargs)
        earliest = dt.date.fromisoformat(self.EARLIEST)
        # "from" is a Python keyword, so the fields are added here rather than declared.
        for name, label, missing in (
            ("from", "From", "From: pick the first day of the range."),
            ("to", "To", "To: pick the last day of the range."),
        ):
            self.fields[name] = forms.DateField(
                label=label,
                input_formats=["%Y-%m-%d"],
                widget=forms.DateInput(
                    format="%Y-%m-%d", attrs={"type": "date", "min": self.EARLIEST}
                ),
                error_messages={
                    "required": missing,
                    "invalid": f"{label}: enter a date as YYYY-MM-DD, e.g. 2025-03-20.",
                },
            )
            self.fields[name].validators.append(
                MinValueValidator(earliest, f"{label}: pick a day from {self.EARLIEST} on.")
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("from"), cleaned.get("to")
        if first is None or last is None:
            return cleaned
        if first > last:
            self.add_error("to", "To is before From: pick a last day on or after the first.")
        elif first > timezone.localdate():
            self.add_error("from", "From is after today: nothing has been counted yet.")
        elif (last - first).days + 1 > self.MAX_DAYS:
            self.add_error(
                "to",
                f"A range spans at most three years ({self.MAX_DAYS} days); "
                "for more, pick All time.",
            )
        return cleaned

    def dates(self) -> tuple[dt.date, dt.date]:
        """The first and last day, datetime.dates (call after is_valid())."""
        return self.cleaned_data["from"], self.cleaned_data["to"]
