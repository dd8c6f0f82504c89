"""How a key is derived, as keys.py documents it: the same input gives the same bytes to
hash whatever order its dicts were built in, and the hash is the documented one, so
keys stay stable across releases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from blake3 import blake3
from pydantic import BaseModel, Field, create_model

from extractor.caching.arguments import encode_arguments
from extractor.caching.keys import (
    KEY_FORMAT,
    LONG_ARGUMENTS,
    KeyBuilder,
    canonical_json,
    schema_fingerprint,
)

IDENTITY = {
    "namespace": "tenant-a",
    "function": "users.extract_user",
    "code": "c0de",
    "version": "3",
    "schema": "5c4e",
}


def key_builder(func: Callable[..., Any], **options: Any) -> KeyBuilder:
    return KeyBuilder(
        func=func,
        namespace=IDENTITY["namespace"],
        function_name=IDENTITY["function"],
        code_fingerprint=IDENTITY["code"],
        version=IDENTITY["version"],
        schema_fingerprint=IDENTITY["schema"],
        **options,
    )


def static_prefix() -> bytes:
    """The key's static part as documented: the canonical JSON of the key format and
    the function's identity, then a newline before the arguments."""
    return canonical_json({"format": KEY_FORMAT, **IDENTITY}) + b"\n"


def reversed_insertion(value: Any) -> Any:
    """`value` with every dict, at every depth, built in the reverse order."""
    if isinstance(value, dict):
        return {name: reversed_insertion(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_insertion(item) for item in value]
    return value


# --- canonical_json: sorted keys at every depth ------------------------------------

NESTED = {
    "b": {"z": 1, "a": [{"y": True, "x": None}]},
    "a": "first",
    "c": [{"k": {"n": 2, "m": 1}}],
}


def test_canonical_json_sorts_the_keys_of_dicts_at_every_depth():
    assert canonical_json(NESTED) == (
        b'{"a":"first","b":{"a":[{"x":null,"y":true}],"z":1},"c":[{"k":{"m":1,"n":2}}]}'
    )


def test_canonical_json_is_the_same_whatever_order_the_dicts_were_built_in():
    rebuilt = reversed_insertion(NESTED)
    assert list(rebuilt) != list(NESTED)
    assert list(rebuilt["c"][0]["k"]) != list(NESTED["c"][0]["k"])

    assert canonical_json(rebuilt) == canonical_json(NESTED)


# --- schema_fingerprint: equal iff the JSON schemas are equal as dicts -------------


def address_model(*field_order: str) -> type[BaseModel]:
    fields: dict[str, Any] = {"city": (str, ""), "street": (str, "")}
    return create_model("Address", **{name: fields[name] for name in field_order})


def person_model(address: type[BaseModel], *field_order: str) -> type[BaseModel]:
    fields: dict[str, Any] = {"name": (str, ""), "age": (int, 0), "address": (address, None)}
    return create_model("Person", **{name: fields[name] for name in field_order})


def test_models_with_equal_json_schemas_share_a_fingerprint_whatever_their_field_order():
    first = person_model(address_model("city", "street"), "name", "age", "address")
    second = person_model(address_model("street", "city"), "address", "age", "name")
    first_schema, second_schema = first.model_json_schema(), second.model_json_schema()
    # Equal as dicts, built in another order at the top and in $defs.
    assert second_schema == first_schema
    assert list(second_schema["properties"]) != list(first_schema["properties"])
    assert list(second_schema["$defs"]["Address"]["properties"]) != list(
        first_schema["$defs"]["Address"]["properties"]
    )

    fingerprint, schema = schema_fingerprint(first)

    assert schema_fingerprint(second)[0] == fingerprint
    assert schema == first_schema


class Required(BaseModel):
    name: str
    age: int


class RequiredReordered(BaseModel):
    age: int
    name: str


class Described(BaseModel):
    name: str = Field(description="The name")
    age: int


class DescribedOtherwise(BaseModel):
    name: str = Field(description="The full name, as written")
    age: int


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            person_model(address_model("city", "street"), "name", "age", "address"),
            person_model(address_model("city"), "name", "age", "address"),
            id="a nested field removed",
        ),
        pytest.param(
            create_model("Detail", age=(int, 0)),
            create_model("Detail", age=(float, 0)),
            id="a type changed",
        ),
        pytest.param(Required, RequiredReordered, id="the required fields in another order"),
        pytest.param(Described, DescribedOtherwise, id="a description changed"),
    ],
)
def test_models_whose_json_schemas_differ_have_different_fingerprints(first, second):
    assert first.model_json_schema() != second.model_json_schema()

    assert schema_fingerprint(first)[0] != schema_fingerprint(second)[0]


# --- the digest: SHA-256 below LONG_ARGUMENTS bytes of arguments, BLAKE3 from there ---


def extract(text: str, model: str = "gpt-4o-mini") -> None:
    raise AssertionError("not called")


def text_encoding_to(length: int) -> str:
    """A text whose call extract(text) has arguments of exactly `length` bytes."""
    return "a" * (length - len(encode_arguments(("", "gpt-4o-mini"))))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blake3_hex(data: bytes) -> str:
    return blake3(data).hexdigest()


@pytest.mark.parametrize(
    ("length", "digest"),
    [
        pytest.param(40, sha256_hex, id="short: SHA-256"),
        pytest.param(LONG_ARGUMENTS - 1, sha256_hex, id="one byte short of long: SHA-256"),
        pytest.param(LONG_ARGUMENTS, blake3_hex, id="exactly long: BLAKE3"),
        pytest.param(3 * LONG_ARGUMENTS, blake3_hex, id="beyond long: BLAKE3"),
    ],
)
def test_the_key_is_the_documented_digest_of_the_static_prefix_and_the_arguments(length, digest):
    text = text_encoding_to(length)

    key, encoded = key_builder(extract).build((text,), {})

    assert encoded == encode_arguments((text, "gpt-4o-mini"))
    assert len(encoded) == length
    assert key == digest(static_prefix() + encoded)


def insertion_ordered_set(*items: int) -> set[int]:
    values: set[int] = set()
    for item in items:
        values.add(item)
    return values


def test_an_argument_outside_the_fast_types_is_encoded_in_its_canonical_form():
    def quote(amount: Decimal, tags: set[int]) -> None:
        raise AssertionError("not called")

    build = key_builder(quote).build
    # 0 and 8 share a slot in a small set: each iterates in its own insertion order.
    tags, same_tags = insertion_ordered_set(0, 8), insertion_ordered_set(8, 0)
    assert list(tags) != list(same_tags)

    key, encoded = build((Decimal("1.50"), tags), {})

    assert encoded == encode_arguments((Decimal("1.50"), {0, 8}))
    assert key == sha256_hex(static_prefix() + encoded)
    assert build((Decimal("1.50"), same_tags), {}) == (key, encoded)
    assert build((Decimal("1.5"), tags), {})[0] == key  # the same value, normalised
    assert build((Decimal("1.51"), tags), {})[0] != key
    assert build((Decimal("1.50"), {0, 9}), {})[0] != key


def test_an_int_beyond_64_bits_is_encoded_in_its_canonical_form():
    build = key_builder(extract).build

    key, encoded = build(("Jason is 25", 2**70), {})

    assert encoded == encode_arguments(("Jason is 25", 2**70))
    assert key == sha256_hex(static_prefix() + encoded)
    assert build(("Jason is 25", 2**70 + 1), {})[0] != key


def test_with_a_key_function_the_digest_is_over_what_it_returns():
    builder = key_builder(extract, key_function=lambda text, model="gpt-4o-mini": [model, text])

    key, encoded = builder.build(("Jason is 25",), {"model": "gpt-4o"})

    assert encoded == encode_arguments(["gpt-4o", "Jason is 25"])
    assert key == sha256_hex(static_prefix() + encoded)
