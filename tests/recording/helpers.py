"""Shared helpers of the recording tests: response models and function names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, create_model

from extractor.models import Call

FUNCTION_MODULE = "tests.recording.functions"
SCHEMA_MODULE = "tests.recording.schemas"


def person_model(*, with_age: bool = False, name_description: str = "The name.") -> type:
    """A response model always named tests.recording.schemas.Person, whatever its fields."""
    fields: dict[str, Any] = {"name": (str, Field(description=name_description))}
    if with_age:
        fields["age"] = (int, Field(description="Age in years."))
    model = create_model("Person", __base__=BaseModel, __module__=SCHEMA_MODULE, **fields)
    model.__qualname__ = "Person"
    return model


def as_function(func: Callable[..., Any], response_model: type, name: str) -> Callable[..., Any]:
    """Give `func` a fixed module:qualname and its return annotation."""
    func.__annotations__["return"] = response_model
    func.__module__ = FUNCTION_MODULE
    func.__name__ = func.__qualname__ = name
    return func


def calls_in_order() -> list[Call]:
    return list(Call.objects.order_by("created_at", "id"))
