"""Registry of response models the web form and `extract()` can target.

The built-in ones are the recipe's UserDetail and Character; more come from
EXTRACTOR_SCHEMAS as dotted paths ("myapp.schemas.Invoice").
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from pydantic import BaseModel, Field


class UserDetail(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's name as written in the text.")
    age: int = Field(description="Age in years.")


class Character(BaseModel):
    """A character from a story."""

    name: str = Field(description="The character's name.")
    description: str = Field(description="Who the character is, in one or two sentences.")


BUILT_IN: tuple[type[BaseModel], ...] = (UserDetail, Character)


class UnknownSchema(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"Unknown schema {name!r}; registered: {', '.join(known)}.")
        self.name = name


def dotted_path(model: type[BaseModel]) -> str:
    """The name a schema's versions are stored under (SchemaVersion.name)."""
    return f"{model.__module__}.{model.__qualname__}"


@cache
def registered_schemas() -> dict[str, type[BaseModel]]:
    """Schemas by their short name, built-ins first. One from EXTRACTOR_SCHEMAS with a
    built-in's name replaces it on the Extract page (its versions stay apart, under
    its own dotted path, and the pages name it with its module)."""
    schemas = {model.__name__: model for model in BUILT_IN}
    for path in settings.EXTRACTOR_SCHEMAS:
        try:
            model = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"EXTRACTOR_SCHEMAS: cannot import {path!r}: {exc}") from exc
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ImproperlyConfigured(f"EXTRACTOR_SCHEMAS: {path!r} is not a Pydantic model")
        schemas[model.__name__] = model
    return schemas


def get_schema(name: str) -> type[BaseModel]:
    schemas = registered_schemas()
    try:
        return schemas[name]
    except KeyError:
        raise UnknownSchema(name, list(schemas)) from None
