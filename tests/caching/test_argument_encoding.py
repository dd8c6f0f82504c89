"""Argument encoding: values that make different requests never share a key, and
values that make the same request always do."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field

from extractor.caching import ArgumentEncodingError, MemoryBackend, instructor_cache
from tests.caching.support import UserDetail


@pytest.fixture
def encoding() -> ModuleType:
    # Imported here, not at the top: run against code without this module,
    # only the tests that use it fail and every other test still reports.
    return importlib.import_module("extractor.caching.arguments")


@pytest.fixture
def encode(encoding: ModuleType) -> Callable[[Any], bytes]:
    return encoding.encode_arguments  # type: ignore[no-any-return]


@pytest.fixture
def extract(client):
    """A cached extraction whose prompt is built from any value it is given."""

    @instructor_cache(backend=MemoryBackend())
    def extract_user(value: Any) -> UserDetail:
        text = value.read_text() if isinstance(value, Path) and value.is_file() else repr(value)
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract_user


@instructor_cache(backend=MemoryBackend())
def keyed(value: Any) -> UserDetail:
    raise AssertionError("only its keys are used")


def distinct(*values: Any) -> bool:
    """Whether each value gives a call a key of its own."""
    keys = [keyed.cache.cache_key(value) for value in values]
    return len(set(keys)) == len(keys)


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    SMALL = 1


class Invoice(BaseModel):
    number: str
    # Left out of model_dump() (and so out of the old key), but the function may read it.
    internal_note: str = Field(default="", exclude=True)


class Point(BaseModel):
    x: int
    y: int


class Vector(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class PointData:
    x: int
    y: int


@dataclasses.dataclass
class VectorData:
    x: int
    y: int


# -- through a real decorated function: a collision was a wrong hit -----------------


def test_an_enum_and_its_raw_value_are_different_entries(extract, fake_llm):
    extract(Colour.RED)
    extract("red")
    extract(Size.SMALL)
    extract(1)
    assert fake_llm.count == 4

    extract(Colour.RED)
    extract(Size.SMALL)
    assert fake_llm.count == 4


def test_nan_the_infinities_and_none_are_different_entries(extract, fake_llm):
    for value in (None, math.nan, math.inf, -math.inf):
        extract(value)
    assert fake_llm.count == 4

    # NaN is not equal to itself, but it is the same request.
    extract(float("nan"))
    extract(None)
    assert fake_llm.count == 4


def test_a_pydantic_argument_field_excluded_from_dumps_is_part_of_the_key(extract, fake_llm):
    extract(Invoice(number="A-1", internal_note="VIP customer"))
    extract(Invoice(number="A-1", internal_note="new customer"))
    assert fake_llm.count == 2

    extract(Invoice(number="A-1", internal_note="VIP customer"))
    assert fake_llm.count == 2


def test_a_dict_with_int_keys_is_accepted_and_differs_from_str_keys(extract, fake_llm):
    extract({1: "a", 2: "b"})
    extract({2: "b", 1: "a"})  # key order does not matter
    assert fake_llm.count == 1

    extract({"1": "a", "2": "b"})
    assert fake_llm.count == 2


def test_a_path_argument_follows_the_content_of_its_file(extract, fake_llm, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Jason is 25")
    extract(prompt)
    extract(prompt)
    assert fake_llm.count == 1

    prompt.write_text("Jason is 26")  # same size, same name
    extract(prompt)
    assert fake_llm.count == 2
    assert fake_llm.requests[-1]["messages"][-1]["content"] == "Jason is 26"

    prompt.write_text("Jason is 25")
    extract(prompt)
    assert fake_llm.count == 2


def test_a_missing_path_is_a_key_not_an_error_and_creating_the_file_misses(
    extract, fake_llm, tmp_path
):
    prompt = tmp_path / "later.txt"
    extract(prompt)
    extract(prompt)
    assert fake_llm.count == 1

    prompt.write_text("Jason is 25")
    extract(prompt)
    assert fake_llm.count == 2


# -- through a real decorated function: a needless miss ------------------------------


def test_decimals_of_the_same_value_share_an_entry(extract, fake_llm):
    extract(Decimal("19.9"))
    extract(Decimal("19.90"))
    extract(Decimal("19.900000"))
    assert fake_llm.count == 1

    extract(Decimal("19.91"))
    assert fake_llm.count == 2


def test_a_tuple_and_a_list_of_the_same_items_share_an_entry(extract, fake_llm):
    extract(("Jason", 25))
    extract(["Jason", 25])
    assert fake_llm.count == 1


def test_sets_in_any_order_share_an_entry(extract, fake_llm):
    extract({"b", "a", "c"})
    extract(frozenset({"c", "a", "b"}))
    assert fake_llm.count == 1


# -- keys: finer distinctions ---------------------------------------------------------


def test_bytes_like_values_differ_from_the_str_of_the_same_text():
    assert distinct("abc", b"abc")
    assert distinct(b"abc", "YWJj", "616263")  # nor from their base64 or hex text
    assert not distinct(b"abc", bytearray(b"abc"), memoryview(b"abc"))


def test_dates_times_and_uuids_differ_from_their_text():
    moment = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    identifier = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert distinct(moment, moment.isoformat(), moment.replace(tzinfo=None))
    assert distinct(moment.date(), moment.date().isoformat())
    assert distinct(moment.time(), moment.time().isoformat())
    assert distinct(identifier, str(identifier))
    assert distinct(dt.timedelta(seconds=90), 90, [0, 90, 0])


def test_models_and_dataclasses_are_tagged_with_their_class():
    assert distinct(
        Point(x=1, y=2),
        Vector(x=1, y=2),
        {"x": 1, "y": 2},
        PointData(x=1, y=2),
        VectorData(x=1, y=2),
    )
    assert not distinct(Point(x=1, y=2), Point(x=1, y=2))
    assert distinct(PointData(x=1, y=2), PointData(x=1, y=3))


def test_nested_models_keep_excluded_fields_and_extras():
    class Order(BaseModel):
        invoice: Invoice

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str

    assert distinct(
        Order(invoice=Invoice(number="1", internal_note="a")),
        Order(invoice=Invoice(number="1", internal_note="b")),
    )
    assert distinct(Loose(name="a"), Loose(name="a", tone="dry"), Loose(name="a", tone="wet"))


def test_a_class_argument_is_its_importable_name(encode):
    assert encode((Point,)) == b'[{"$class":"tests.caching.test_argument_encoding:Point"}]'
    assert distinct(Point, Vector, "Point")


def test_user_data_cannot_forge_a_tag(encode):
    """A user's dict holding a tag's key encodes differently from the tagged value."""
    for value in (Colour.RED, math.nan, Decimal("1.5"), b"abc", {1: "a"}, Point(x=1, y=2)):
        forged = orjson.loads(encode(value))
        assert isinstance(forged, dict)
        assert distinct(value, forged)
    assert encode({"$enum": 1, "$$x": 2, "plain": 3}) == b'{"$$$x":2,"$$enum":1,"plain":3}'


def test_a_set_differs_from_a_list_and_a_dict_from_its_pairs():
    assert distinct({"a", "b"}, ["a", "b"])
    assert distinct({1: "a"}, [[1, "a"]], {"1": "a"}, {True: "a"}, {1.5: "a"})


def test_decimals_are_normalised_exactly_without_rounding():
    assert not distinct(Decimal("100"), Decimal("1E+2"), Decimal("100.00"))
    assert not distinct(Decimal("0"), Decimal("0.000"), Decimal("-0"))
    # More digits than the default decimal context keeps (28): still told apart.
    assert distinct(Decimal("1." + "0" * 40 + "1"), Decimal("1"))
    assert distinct(Decimal("19.9"), 19.9, "19.9")


def test_an_int_beyond_64_bits_is_a_key_and_differs_from_its_text():
    assert distinct(2**70, str(2**70), 2**70 + 1, -(2**70))


def test_the_usual_arguments_encode_as_plain_json_so_their_keys_do_not_change(encode):
    values = ("Jason is 25", 25, True, None, "")
    assert encode(values) == orjson.dumps(values)
    # The walk taken by any other argument writes those values the same way.
    assert encode([*values, 2.5]) == orjson.dumps([*values, 2.5])
    assert encode({"text": "Jason", "n": 1}) == b'{"n":1,"text":"Jason"}'


def test_paths_of_a_directory_a_missing_file_and_a_pure_path_are_keys(tmp_path, encode):
    folder = tmp_path / "folder"
    folder.mkdir()
    before = encode((folder,))
    (folder / "inside.txt").write_text("not followed")
    assert encode((folder,)) == before  # a directory's contents are not followed
    assert b"directory" in before

    missing = tmp_path / "missing.txt"
    assert b"missing" in encode((missing,))
    assert distinct(missing, str(missing), PurePosixPath(missing), folder)


def test_a_file_path_is_read_once_while_its_stat_is_unchanged(
    tmp_path, monkeypatch, encoding, encode
):
    # A file changed in the last 2 s is read again on each call (timestamps
    # are coarse); this test's file is new, so close that window for it.
    monkeypatch.setattr(encoding, "_RECENT_NS", -1)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Jason is 25")

    first = encode((prompt,))
    assert [identity[0] for identity in encoding._digests].count(str(prompt)) == 1
    assert encode((prompt,)) == first
    assert [identity[0] for identity in encoding._digests].count(str(prompt)) == 1

    prompt.write_text("Jason is 26")
    assert encode((prompt,)) != first


def test_an_argument_with_no_form_is_named_with_where_it_sits(fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str, options: dict[str, Any]) -> UserDetail:
        raise AssertionError("never called")

    with pytest.raises(ArgumentEncodingError) as raised:
        extract("Jason is 25", {"tones": ["dry", object()]})

    message = str(raised.value)
    assert "Argument 'options'" in message
    assert "object at ['tones'][1] has no canonical form" in message
    assert "dicts (any hashable keys)" in message
    assert "key=..." in message
    assert fake_llm.count == 0
