"""One name per function and per schema that tells it apart from every other one.

Functions are stored as "module:qualname" and schemas as dotted paths; the pages
show the last part ("extract_user", "UserDetail"), which two things may share: a
built-in UserDetail and one from EXTRACTOR_SCHEMAS, or two modules' `extract`.
Where they do, the name is followed by where it lives ("UserDetail (myapp.schemas)").
The names are unique across everything of their kind the database knows, not
only across one page, so a name means the same thing on every page, filter and
miss reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from extractor.models import CachedFunction, SchemaVersion
from extractor.selectors.entries import entry_function_names


def short_name(name: str) -> str:
    """ "module:qualname" or a dotted path -> its last part."""
    return name.replace(":", ".").rsplit(".", 1)[-1]


def _where(name: str) -> str:
    """Everything before the short name: the module (and any enclosing class)."""
    return name[: -len(short_name(name))].rstrip(".:")


def unique_names(names: Iterable[str]) -> dict[str, str]:
    """Each name's short name, followed by where it lives when another name shares it."""
    names = set(names)
    shared = Counter(short_name(name) for name in names)
    return {
        name: short_name(name)
        if shared[short_name(name)] == 1 or not _where(name)
        else f"{short_name(name)} ({_where(name)})"
        for name in names
    }


@dataclass(frozen=True)
class DisplayNames:
    functions: dict[str, str]
    schemas: dict[str, str]

    def function(self, name: str) -> str:
        # A name read after this was built (a function first seen since) keeps its short name.
        return self.functions.get(name) or short_name(name)

    def schema(self, name: str) -> str:
        return self.schemas.get(name) or short_name(name)

    def schema_version(self, version: SchemaVersion) -> str:
        """ "UserDetail v2", or "UserDetail v2 (myapp.schemas)" where two schemas share the name."""
        shown = self.schema(version.name)
        short = short_name(version.name)
        if shown == short:
            return f"{short} {version.label}"
        return f"{short} {version.label}{shown[len(short) :]}"


def display_names() -> DisplayNames:
    """The names of every function and schema the database knows (two small tables
    and one loose index scan of the entries' functions)."""
    functions = set(CachedFunction.objects.values_list("name", flat=True))
    functions |= set(entry_function_names())
    schemas = SchemaVersion.objects.values_list("name", flat=True).distinct()
    return DisplayNames(functions=unique_names(functions), schemas=unique_names(schemas))
