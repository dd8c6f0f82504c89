"""Cache keys: every part of what a call depends on is in the key, nothing else is."""

from __future__ import annotations

import inspect
from decimal import Decimal
from enum import Enum
from pathlib import Path

import instructor
import openai
import pytest

from extractor.caching import ArgumentEncodingError, MemoryBackend, capture_calls, instructor_cache
from tests.caching.support import KEY, MODEL_BODY, USERS_MODULE, UserDetail, edit, outcomes


def test_a_key_is_64_hex_characters_and_the_call_uses_it(client):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    key = extract.cache.cache_key("Jason is 25")
    with capture_calls() as calls:
        extract("Jason is 25")

    assert KEY.fullmatch(key)
    assert calls[0].key == key


@pytest.mark.parametrize("length", [10, 5_000], ids=["short text", "long text"])
def test_a_key_is_stable_for_one_argument_and_changes_with_it(length):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        raise AssertionError("not called")

    text = ("Jason is 25. " * length)[:length]
    key = extract.cache.cache_key(text)

    assert KEY.fullmatch(key)
    assert extract.cache.cache_key(text) == key
    assert extract.cache.cache_key(text[:-1] + "!") != key


def test_the_same_call_is_served_from_the_cache(modules, fake_llm):
    users = modules.load("users_extraction", USERS_MODULE)

    first = users.extract_user("Jason is 25")
    second = users.extract_user("Jason is 25")

    assert fake_llm.count == 1
    assert second.model_dump() == first.model_dump()
    assert isinstance(second, users.UserDetail)


def test_different_arguments_are_different_entries(modules, fake_llm):
    users = modules.load("users_extraction", USERS_MODULE)

    users.extract_user("Jason is 25")
    users.extract_user("Sarah is 31")
    users.extract_user("Jason is 25")
    users.extract_user("Sarah is 31")

    assert fake_llm.count == 2


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(MODEL_BODY, MODEL_BODY + '    email: str = ""\n', id="a field added"),
        pytest.param(MODEL_BODY, "    name: str\n    age: float\n", id="a type changed"),
        pytest.param(
            "    name: str\n    age: int = 0\n",
            "    name: str\n    age: int = 18\n",
            id="a default changed",
        ),
        pytest.param(
            '    name: str = Field(description="The name")\n    age: int\n',
            '    name: str = Field(description="The full name, as written")\n    age: int\n',
            id="a field description changed",
        ),
    ],
)
def test_a_changed_response_model_is_a_miss(modules, fake_llm, before, after):
    source = edit(USERS_MODULE, MODEL_BODY, before)
    old = modules.load("users_extraction", source)
    old.extract_user("Jason is 25")
    old.extract_user("Jason is 25")
    assert fake_llm.count == 1

    new = modules.load("users_extraction", edit(source, before, after))
    new.extract_user("Jason is 25")
    assert fake_llm.count == 2
    new.extract_user("Jason is 25")
    assert fake_llm.count == 2

    # Only the schema changed: the function's code fingerprint is the same.
    old_info, new_info = old.extract_user.cache.info, new.extract_user.cache.info
    assert new_info.code_fingerprint == old_info.code_fingerprint
    assert new_info.schema_fingerprint != old_info.schema_fingerprint
    # A miss because the key differs, not only because the stored value's
    # fingerprint fails the check on read.
    key = new.extract_user.cache.cache_key("Jason is 25")
    assert key != old.extract_user.cache.cache_key("Jason is 25")


def test_editing_the_prompt_inside_the_function_is_a_miss(modules, fake_llm):
    old = modules.load("users_extraction", USERS_MODULE)
    old.extract_user("Jason is 25")

    new = modules.load(
        "users_extraction",
        edit(USERS_MODULE, 'f"Text: {text}"', 'f"Extract the user from: {text}"'),
    )
    new.extract_user("Jason is 25")
    new.extract_user("Jason is 25")

    assert fake_llm.count == 2
    assert fake_llm.requests[-1]["messages"][-1]["content"] == "Extract the user from: Jason is 25"
    assert (
        new.extract_user.cache.info.code_fingerprint != old.extract_user.cache.info.code_fingerprint
    )
    assert (
        new.extract_user.cache.info.schema_fingerprint
        == old.extract_user.cache.info.schema_fingerprint
    )


def test_editing_the_model_name_inside_the_function_is_a_miss(modules, fake_llm):
    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")

    new = modules.load("users_extraction", edit(USERS_MODULE, '"gpt-4o-mini"', '"gpt-4o"'))
    new.extract_user("Jason is 25")
    new.extract_user("Jason is 25")

    assert fake_llm.count == 2
    assert [request["model"] for request in fake_llm.requests] == ["gpt-4o-mini", "gpt-4o"]


def test_editing_a_module_constant_the_function_reads_is_a_miss(modules, fake_llm):
    old = modules.load("users_extraction", USERS_MODULE)
    old.extract_user("Jason is 25")

    new = modules.load(
        "users_extraction",
        edit(USERS_MODULE, '"You extract the user mentioned in a text."', '"Extract every user."'),
    )
    new.extract_user("Jason is 25")
    new.extract_user("Jason is 25")

    assert fake_llm.count == 2
    assert fake_llm.requests[-1]["messages"][0]["content"] == "Extract every user."
    assert (
        new.extract_user.cache.info.code_fingerprint != old.extract_user.cache.info.code_fingerprint
    )


def test_an_unrelated_module_constant_is_not_part_of_the_key(modules, fake_llm):
    source = edit(USERS_MODULE, "PROMPT =", 'UNUSED = "one"\nPROMPT =')
    modules.load("users_extraction", source).extract_user("Jason is 25")

    new = modules.load("users_extraction", edit(source, 'UNUSED = "one"', 'UNUSED = "two"'))
    new.extract_user("Jason is 25")

    assert fake_llm.count == 1


def test_a_comment_or_reformatting_in_the_function_is_still_a_hit(modules, fake_llm):
    old = modules.load("users_extraction", USERS_MODULE)
    old.extract_user("Jason is 25")

    reformatted = edit(
        USERS_MODULE,
        """    return client.chat.completions.create(
        model="gpt-4o-mini",
        response_model=UserDetail,
        messages=[
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": f"Text: {text}"},
        ],
    )
""",
        """    # The system prompt lives in PROMPT so that it can be reviewed on its own.
    return client.chat.completions.create(model='gpt-4o-mini', response_model=UserDetail,
        messages=[{'role': 'system', 'content': PROMPT},   # instructions
                  {'role': 'user', 'content': f'Text: {text}'}])
""",
    )
    new = modules.load("users_extraction", reformatted)
    new.extract_user("Jason is 25")

    assert "# instructions" in inspect.getsource(new.extract_user)
    assert fake_llm.count == 1
    assert new.extract_user.cache.cache_key("Jason is 25") == old.extract_user.cache.cache_key(
        "Jason is 25"
    )


def test_changing_decorator_options_such_as_the_ttl_is_still_a_hit(modules, fake_llm):
    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")

    new = modules.load("users_extraction", edit(USERS_MODULE, "ttl=3600", "ttl=60"))
    new.extract_user("Jason is 25")

    assert fake_llm.count == 1
    assert new.extract_user.cache.info.ttl == 60


def test_bumping_the_version_is_a_miss_and_going_back_finds_the_old_entry(modules, fake_llm):
    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")

    bumped = modules.load("users_extraction", edit(USERS_MODULE, "ttl=3600", "ttl=3600, version=2"))
    bumped.extract_user("Jason is 25")
    bumped.extract_user("Jason is 25")
    assert fake_llm.count == 2

    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")
    assert fake_llm.count == 2


def test_another_namespace_is_a_miss(modules, fake_llm):
    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")

    tenant = modules.load(
        "users_extraction", edit(USERS_MODULE, "ttl=3600", 'ttl=3600, namespace="tenant-b"')
    )
    tenant.extract_user("Jason is 25")
    tenant.extract_user("Jason is 25")

    assert fake_llm.count == 2


def test_the_version_and_namespace_change_only_the_key_not_the_fingerprints(client):
    def define(**options):
        @instructor_cache(backend=MemoryBackend(), **options)
        def extract(text: str) -> UserDetail:
            return client.chat.completions.create(
                model="gpt-4o-mini",
                response_model=UserDetail,
                messages=[{"role": "user", "content": text}],
            )

        return extract

    plain, versioned, tenant = define(), define(version="2"), define(namespace="tenant-b")

    keys = {f.cache.cache_key("Jason is 25") for f in (plain, versioned, tenant)}
    assert len(keys) == 3
    assert define().cache.cache_key("Jason is 25") == plain.cache.cache_key("Jason is 25")
    assert define(version=2).cache.cache_key("x") == versioned.cache.cache_key("x")
    assert {f.cache.info.code_fingerprint for f in (plain, versioned, tenant)} == {
        plain.cache.info.code_fingerprint
    }


def test_the_same_arguments_bound_differently_share_one_entry(client, fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str, model: str = "gpt-4o-mini") -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with capture_calls() as calls:
        extract("Jason is 25", model="gpt-4o-mini")
        extract("Jason is 25", "gpt-4o-mini")
        extract(model="gpt-4o-mini", text="Jason is 25")
        extract("Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit", "hit", "hit"]
    assert len({record[1] if isinstance(record, tuple) else record.key for record in calls}) == 1

    extract("Jason is 25", model="gpt-4o")
    assert fake_llm.count == 2


def test_keyword_only_and_variadic_parameters_bind_to_one_key():
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str, *hints: str, model: str = "m", **extra: str) -> UserDetail:
        return UserDetail(name=text, age=len(hints))

    key = extract.cache.cache_key
    assert key("a", "h1", model="m", tone="dry") == key("a", "h1", tone="dry")
    assert key("a", "h1") != key("a", "h2")
    assert key("a", tone="dry") != key("a", tone="wet")
    assert key("a", model="m") != key("a", model="n")


class Colour(Enum):
    RED = "red"


def test_json_like_arguments_make_stable_keys(client, fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract(
        person: UserDetail, amount: Decimal, colour: Colour, path: Path, tags: set[str]
    ) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": f"{person} {amount} {colour} {path} {tags}"}],
        )

    extract(UserDetail(name="Jason", age=25), Decimal("1.50"), Colour.RED, Path("/a"), {"x", "y"})
    extract(UserDetail(name="Jason", age=25), Decimal("1.50"), Colour.RED, Path("/a"), {"y", "x"})
    assert fake_llm.count == 1

    extract(UserDetail(name="Jason", age=26), Decimal("1.50"), Colour.RED, Path("/a"), {"x", "y"})
    assert fake_llm.count == 2


def test_an_argument_with_no_json_form_is_refused_by_name_before_the_provider_is_called(
    client, fake_llm
):
    class Session:  # an object with no canonical form (a client has one: its configuration)
        llm = client

    @instructor_cache(backend=MemoryBackend())
    def extract(session: Session, text: str) -> UserDetail:
        return session.llm.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with pytest.raises(
        ArgumentEncodingError, match=r"Argument 'session' of .*extract.*key=\.\.\."
    ) as raised:
        extract(Session(), "Jason is 25")
    with pytest.raises(ArgumentEncodingError, match="'session'"):
        extract(object(), "Jason is 25")

    assert isinstance(raised.value, TypeError)
    assert fake_llm.count == 0


def test_a_key_function_leaves_out_what_has_no_json_form(fake_llm):
    @instructor_cache(backend=MemoryBackend(), key=lambda llm, text: text)
    def extract(llm: instructor.Instructor, text: str) -> UserDetail:
        return llm.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    def new_client() -> instructor.Instructor:
        raw = openai.OpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0)
        return instructor.from_openai(raw)

    first = extract(new_client(), "Jason is 25")
    second = extract(new_client(), "Jason is 25")
    extract(new_client(), "Sarah is 31")

    assert fake_llm.count == 2
    assert second.model_dump() == first.model_dump()


def test_a_key_function_that_returns_no_json_form_is_refused(fake_llm):
    @instructor_cache(backend=MemoryBackend(), key=lambda text: object())
    def extract(text: str) -> UserDetail:
        raise AssertionError("never called")

    with pytest.raises(ArgumentEncodingError, match="key function") as raised:
        extract("Jason is 25")
    assert "object has no canonical form" in str(raised.value)
    assert fake_llm.count == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "mentioned"),
    [
        pytest.param((), {}, "'text'", id="missing"),
        pytest.param(
            ("Jason is 25",), {"temperature": 0}, "'temperature'", id="unexpected keyword"
        ),
        pytest.param(("Jason is 25",), {"text": "again"}, "'text'", id="given twice"),
        pytest.param(("Jason is 25", "gpt-4o", 1), {}, "positional", id="too many"),
    ],
)
def test_a_wrong_call_raises_the_type_error_the_function_would(
    client, fake_llm, args, kwargs, mentioned
):
    def extract(text: str, model: str = "gpt-4o-mini") -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    cached = instructor_cache(backend=MemoryBackend())(extract)

    with pytest.raises(TypeError) as plain:
        extract(*args, **kwargs)
    with pytest.raises(TypeError, match=mentioned) as wrapped:
        cached(*args, **kwargs)

    assert type(wrapped.value) is type(plain.value)
    assert mentioned in str(plain.value)
    assert fake_llm.count == 0


# --- Defaults filled in: a call and the same call with its defaults spelled out ----


def test_a_call_with_its_defaults_filled_in_shares_the_key_even_when_every_parameter_has_one(
    client, fake_llm
):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str = "Jason is 25", attempts: int = 2) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with capture_calls() as calls:
        extract()
        extract("Jason is 25")
        extract("Jason is 25", 2)
        extract(attempts=2)
        extract(text="Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit", "hit", "hit", "hit"]
    assert {extract.cache.cache_key(), extract.cache.cache_key(attempts=2)} == {
        extract.cache.cache_key("Jason is 25", 2)
    }

    extract("Sarah is 31")
    extract(attempts=3)
    assert fake_llm.count == 3


# --- A wrong call raises TypeError, even when its key is already cached ------------

WRONG_CALLS = [
    pytest.param(
        ("Jason is 25", "gpt-4o-mini"),
        {"model": "gpt-4o-mini"},
        "'model'",
        id="every argument positional and one again by keyword",
    ),
    pytest.param(("Jason is 25",), {"text": "Jason is 25"}, "'text'", id="given twice"),
    pytest.param(("Jason is 25", "gpt-4o-mini", 1), {}, "positional", id="one too many"),
    pytest.param((), {"model": "gpt-4o-mini"}, "'text'", id="missing"),
    pytest.param(("Jason is 25",), {"temperature": 0}, "'temperature'", id="unknown keyword"),
    pytest.param(
        (),
        {"text": "Jason is 25", "temperature": 0},
        "'temperature'",
        id="unknown keyword beside a right one",
    ),
]


def every_call_alike(*args: object, **kwargs: object) -> str:
    """A key function under which any call, right or wrong, would find the cached entry."""
    return "one entry"


@pytest.mark.parametrize("key", [None, every_call_alike], ids=["arguments", "key function"])
@pytest.mark.parametrize(("args", "kwargs", "mentioned"), WRONG_CALLS)
def test_a_wrong_call_raises_type_error_and_is_not_served_even_when_its_key_is_cached(
    client, fake_llm, key, args, kwargs, mentioned
):
    def extract(text: str, model: str = "gpt-4o-mini") -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    cached = instructor_cache(backend=MemoryBackend(), key=key)(extract)
    with capture_calls() as calls:
        cached("Jason is 25")
        cached("Jason is 25", "gpt-4o-mini")
    assert outcomes(calls) == ["miss", "hit"]

    with pytest.raises(TypeError) as plain:
        extract(*args, **kwargs)
    with capture_calls() as calls, pytest.raises(TypeError, match=mentioned) as wrapped:
        cached(*args, **kwargs)

    assert type(wrapped.value) is type(plain.value)
    assert calls == []
    assert fake_llm.count == 1


def test_a_keyword_only_parameter_left_to_its_default_shares_the_key_of_the_call_passing_it(
    client, fake_llm
):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str, *, model: str = "gpt-4o-mini") -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25", model="gpt-4o-mini")
        extract(text="Jason is 25")

    assert fake_llm.count == 1
    assert outcomes(calls) == ["miss", "hit", "hit"]


def test_a_keyword_only_argument_passed_positionally_raises_type_error_even_when_cached(
    client, fake_llm
):
    def ask(text: str, model: str) -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    @instructor_cache(backend=MemoryBackend())
    def extract(text: str, *, model: str = "gpt-4o-mini") -> UserDetail:
        return ask(text, model)

    @instructor_cache(backend=MemoryBackend())
    def extract_only_by_keyword(*, text: str) -> UserDetail:
        return ask(text, "gpt-4o-mini")

    extract("Jason is 25", model="gpt-4o")
    extract_only_by_keyword(text="Jason is 25")
    with capture_calls() as calls:
        with pytest.raises(TypeError, match="positional"):
            extract("Jason is 25", "gpt-4o")
        with pytest.raises(TypeError, match="positional"):
            extract_only_by_keyword("Jason is 25")

    assert calls == []
    assert fake_llm.count == 2


# --- A key function is given the call's arguments, keywords included ---------------


def test_a_key_function_receives_the_calls_keyword_arguments(client, fake_llm):
    @instructor_cache(backend=MemoryBackend(), key=lambda text, model="gpt-4o-mini": (text, model))
    def extract(text: str, model: str = "gpt-4o-mini") -> UserDetail:
        return client.chat.completions.create(
            model=model,
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    extract("Jason is 25", model="gpt-4o")
    extract("Jason is 25")
    extract("Jason is 25", model="gpt-4o")

    assert [request["model"] for request in fake_llm.requests] == ["gpt-4o", "gpt-4o-mini"]
    assert extract.cache.cache_key("Jason is 25", model="gpt-4o") != extract.cache.cache_key(
        "Jason is 25"
    )
    assert extract.cache.cache_key("Jason is 25", model="gpt-4o-mini") == extract.cache.cache_key(
        "Jason is 25"
    )
