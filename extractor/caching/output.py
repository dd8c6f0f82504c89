"""How a response model's value is stored and read back: exactly, and fast.

A hit must return what the miss returned. Storing `model_dump_json()` and
reading it with `model_validate_json()` does not: it writes aliases one way
and reads them another, drops `exclude=True` fields, applies the user's
serializers, and on the way back runs the user's validators again (a
transforming validator applies twice; one reading Instructor's `context=`
fails without it).

So a value is stored as the plain JSON of its fields, each under its name,
excluded ones included, through pydantic-core's own encoders and none of the
user's serializers. It is read back by a plain twin of the model's
pydantic-core validator: the same types, constraints, nested models, defaults
and `extra` handling, and the same classes (a hit returns instances of the
user's models), but fields by name and no user validators (field or model;
before, after or wrap). A hit is still one Rust-side `validate_json` that
checks every type (a damaged value is refused, never half-read), as cheap as
the plain `model_validate_json` it replaces. What stays of the user's code:
- a *plain* validator (`PlainValidator`, `mode="plain"`): it alone knows how to
  build its field's type, so it runs again on a hit;
- `model_post_init`, which rebuilds private attributes the JSON does not carry.

Whether a value survives this is checked once, on the miss (`stored_form`):
its JSON must read back to equal field values, else it is not cached (e.g. a
validator that turned a `str` field into a list, or a type with no JSON form).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from typing import Any, cast

import pydantic_core
from pydantic import BaseModel
from pydantic_core import CoreSchema, SchemaValidator

# Schema keys whose values are schemas, or lists/dicts of schemas.
_CHILDREN = frozenset(
    {
        "schema",
        "items_schema",
        "keys_schema",
        "values_schema",
        "choices",
        "definitions",
        "steps",
        "lax_schema",
        "strict_schema",
        "json_schema",
        "python_schema",
        "fields",
        "extras_schema",
        "extras_keys_schema",
        "arguments_schema",
        "var_args_schema",
        "var_kwargs_schema",
    }
)
_VALIDATOR_WRAPPERS = frozenset({"function-before", "function-after", "function-wrap"})
_FIELDS = frozenset({"model-field", "dataclass-field", "typed-dict-field"})
# Model config options, and the pydantic_core.to_json argument each one sets.
_MODES = {
    "ser_json_timedelta": "timedelta_mode",
    "ser_json_temporal": "temporal_mode",
    "ser_json_bytes": "bytes_mode",
}


class UnstorableOutput(ValueError):
    """A returned model whose JSON would not read back as the same value."""


class OutputCodec:
    """Writes a response model's value as plain JSON and reads it back (see the module)."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        # The hit path calls this directly: one Rust call, no Python frame around it.
        self.read_json: Callable[[str | bytes], Any] = _validator(model).validate_json
        # The JSON forms the model's own config asks for, so its validator reads them back.
        config = model.model_config
        self._modes: dict[str, Any] = {"inf_nan_mode": config.get("ser_json_inf_nan", "null")}
        for option, mode in _MODES.items():
            if option in config:
                self._modes[mode] = config[option]  # type: ignore[literal-required]

    def dump_json(self, value: BaseModel) -> bytes:
        return pydantic_core.to_json(fields_of(value), **self._modes)

    def to_jsonable(self, value: BaseModel) -> Any:
        return pydantic_core.to_jsonable_python(fields_of(value), **self._modes)

    def from_stored(self, value: Any) -> BaseModel:
        """An envelope's output: a model instance kept as is, parsed JSON read as a hit reads it."""
        if isinstance(value, self.model):
            return value
        # Through JSON again, so a full parse reads exactly what a hit reads.
        return self.read_json(pydantic_core.to_json(fields_of(value)))  # type: ignore[no-any-return]

    def stored_form(self, value: BaseModel) -> BaseModel:
        """The value a hit will return for `value`, or UnstorableOutput saying why there is none."""
        try:
            data = self.dump_json(value)
            reread: BaseModel = self.read_json(data)
        except (ValueError, pydantic_core.PydanticSerializationError) as exc:
            raise UnstorableOutput(f"its JSON does not read back: {_first_line(exc)}") from exc
        for name in self.model.model_fields:
            if reread.__dict__.get(name) != value.__dict__.get(name):
                raise UnstorableOutput(
                    f"field {name!r} would read back as {reread.__dict__.get(name)!r}, "
                    f"not {value.__dict__.get(name)!r}"
                )
        if reread.__pydantic_extra__ != value.__pydantic_extra__:
            raise UnstorableOutput("its extra fields would not read back the same")
        return reread


def fields_of(value: Any) -> Any:
    """`value` with every model (and dataclass) in it as a dict of all its fields by name.

    Not the model's serializer: pydantic-core hands an instance of the user's
    class to that class's own serializer, with its aliases, exclusions and
    custom serializers, whatever schema it was asked to use.
    """
    if isinstance(value, BaseModel):
        if value.__pydantic_root_model__:
            return fields_of(value.__dict__["root"])
        plain = {
            name: fields_of(value.__dict__[name])
            for name in type(value).model_fields
            if name in value.__dict__
        }
        for name, extra in (value.__pydantic_extra__ or {}).items():
            plain[name] = fields_of(extra)
        return plain
    kind = type(value)
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return [fields_of(item) for item in value]
    if kind is dict:
        return {key: fields_of(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: fields_of(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    return value


@cache
def output_codec(model: type[BaseModel]) -> OutputCodec:
    return OutputCodec(model)


def _validator(model: type[BaseModel]) -> SchemaValidator:
    schema = plain_schema(model.__pydantic_core_schema__)
    try:
        # pydantic-core would otherwise swap every model in the schema for that
        # class's own validator (aliases, user validators and all).
        return SchemaValidator(schema, _use_prebuilt=False)
    except TypeError:  # a pydantic-core from before prebuilt validators: nothing to swap
        return SchemaValidator(schema)


def plain_schema(schema: CoreSchema) -> CoreSchema:
    """`schema` reading fields by name, without the user's validators."""
    return cast(CoreSchema, _plain(dict(schema)))


def _plain(node: dict[str, Any]) -> dict[str, Any]:
    kind = node.get("type")
    if kind in _VALIDATOR_WRAPPERS and _is_users(node["function"]["function"]):
        inner = _plain(dict(node["schema"]))
        if "ref" in node:
            # Other schemas point at this one by its ref: the unwrapped schema takes it.
            inner = (
                {"type": "chain", "steps": [inner], "ref": node["ref"]}
                if "ref" in inner
                else {**inner, "ref": node["ref"]}
            )
        return inner
    if kind == "function-plain":
        return node  # its function alone knows the type (see the module docstring)
    plain = {key: _children(value) if key in _CHILDREN else value for key, value in node.items()}
    if kind in _FIELDS:
        plain.pop("validation_alias", None)  # stored under its name
    if kind == "model":
        plain["custom_init"] = False  # a user __init__ would validate again
    return plain


def _children(value: Any) -> Any:
    if isinstance(value, dict):
        if "type" in value and isinstance(value["type"], str):
            return _plain(dict(value))
        return {key: _children(child) for key, child in value.items()}  # fields, choices
    if isinstance(value, list):
        return [_children(child) for child in value]
    if isinstance(value, tuple):  # a union choice with its label
        return tuple(_children(child) for child in value)
    return value


def _is_users(function: Any) -> bool:
    """Whether a validator or serializer function is the user's, not pydantic's own."""
    if function is None:
        return False
    function = getattr(function, "func", function)  # functools.partial
    function = getattr(function, "__func__", function)  # bound and class methods
    module = getattr(function, "__module__", None) or ""
    return not module.startswith(("pydantic", "pydantic_core"))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
