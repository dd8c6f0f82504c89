"""What can change between two calls of one process joins the key at each call:
the environment, settings objects, and the instance a method reads."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from extractor.caching import MemoryBackend, capture_calls, instructor_cache
from tests.caching.support import UserDetail, outcomes

# The classes below are decorated once, at import: their backends and the key builder made
# at their first call outlive a test. Each test starts them as a new process would: empty
# backends, nothing fingerprinted yet (a second pytest run in one process, as mutmut does,
# would otherwise read the first run's entries as hits and never build a key builder).
EXTRACTOR_BACKEND = MemoryBackend()
CLASSMETHOD_BACKEND = MemoryBackend()
STATICMETHOD_BACKEND = MemoryBackend()


@pytest.fixture(autouse=True)
def fresh_classes() -> None:
    for backend in (EXTRACTOR_BACKEND, CLASSMETHOD_BACKEND, STATICMETHOD_BACKEND):
        backend.clear()
    for method in (Extractor.extract, Service.__dict__["from_class"].__func__, Service.static):
        method.cache._prepared = None


def ask(client, text: str, model: str = "gpt-4o-mini") -> UserDetail:
    return client.chat.completions.create(
        model=model, response_model=UserDetail, messages=[{"role": "user", "content": text}]
    )


def test_an_environment_variable_read_in_the_function_is_part_of_the_key(
    client, fake_llm, monkeypatch
):
    monkeypatch.setenv("CACHESITE_TEST_MODEL", "gpt-4o-mini")

    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        return ask(client, text, model=os.environ["CACHESITE_TEST_MODEL"])

    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")
        monkeypatch.setenv("CACHESITE_TEST_MODEL", "gpt-4o")
        extract("Jason is 25")
        extract("Jason is 25")

    assert outcomes(calls) == ["miss", "hit", "miss", "hit"]
    assert [request["model"] for request in fake_llm.requests] == ["gpt-4o-mini", "gpt-4o"]


def test_calls_by_keyword_join_what_the_function_reads_to_their_own_key(
    client, fake_llm, monkeypatch
):
    monkeypatch.setenv("CACHESITE_TEST_MODEL", "gpt-4o-mini")

    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        return ask(client, text, model=os.environ["CACHESITE_TEST_MODEL"])

    with capture_calls() as calls:
        extract(text="Jason is 25")
        extract(text="Jason is 25")
        extract(text="Sarah is 30")
        monkeypatch.setenv("CACHESITE_TEST_MODEL", "gpt-4o")
        extract(text="Jason is 25")

    assert outcomes(calls) == ["miss", "hit", "miss", "miss"]
    assert [request["model"] for request in fake_llm.requests] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o",
    ]


def test_a_setting_read_in_the_function_is_part_of_the_key(client, fake_llm, settings):
    settings.CACHESITE_TEST_MODEL = "gpt-4o-mini"

    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        return ask(client, text, model=django_settings.CACHESITE_TEST_MODEL)

    with capture_calls() as calls:
        extract("Jason is 25")
        settings.CACHESITE_TEST_MODEL = "gpt-4o"
        extract("Jason is 25")
        extract("Jason is 25")

    assert outcomes(calls) == ["miss", "miss", "hit"]
    assert fake_llm.count == 2


class Extractor:
    """A method keyed as README suggests for `self`: key=lambda self, text: text."""

    def __init__(self, client, model: str) -> None:
        self.client = client
        self.model = model

    @instructor_cache(backend=EXTRACTOR_BACKEND, key=lambda self, text: text)
    def extract(self, text: str) -> UserDetail:
        return self.client.chat.completions.create(
            model=self.model, response_model=UserDetail, messages=self._messages(text)
        )

    def _messages(self, text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]


def test_instances_configured_with_different_models_do_not_share_entries(client, fake_llm):
    with capture_calls() as calls:
        Extractor(client, "gpt-4o-mini").extract("Jason is 25")
        Extractor(client, "gpt-4o").extract("Jason is 25")
        Extractor(client, "gpt-4o").extract("Jason is 25")

    assert outcomes(calls) == ["miss", "miss", "hit"]
    assert [request["model"] for request in fake_llm.requests] == ["gpt-4o-mini", "gpt-4o"]


def test_a_helper_method_called_on_self_is_followed():
    assert f"{__name__}:Extractor._messages" in Extractor.extract.cache.followed()


class Service:
    model = "gpt-4o-mini"

    @instructor_cache(backend=CLASSMETHOD_BACKEND)
    @classmethod
    def from_class(cls, text: str) -> UserDetail:
        return cls.client.chat.completions.create(
            model=cls.model, response_model=UserDetail, messages=[{"role": "user", "content": text}]
        )

    @instructor_cache(backend=STATICMETHOD_BACKEND, key=lambda client, text: text)
    @staticmethod
    def static(client, text: str) -> UserDetail:
        return ask(client, text)


def test_the_decorator_above_classmethod_caches_it(client, fake_llm, monkeypatch):
    monkeypatch.setattr(Service, "client", client, raising=False)

    with capture_calls() as calls:
        Service.from_class("Jason is 25")
        Service().from_class("Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
    assert fake_llm.count == 1


def test_the_decorator_above_staticmethod_binds_no_instance(client, fake_llm):
    with capture_calls() as calls:
        Service().static(client, "Jason is 25")
        Service.static(client, "Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
    assert fake_llm.count == 1


@pytest.mark.parametrize("wrapper", [classmethod, staticmethod])
def test_the_decorator_keeps_classmethod_and_staticmethod_as_they_are(wrapper):
    def extract(first, text: str) -> UserDetail:
        raise AssertionError("not called")

    decorated = instructor_cache(wrapper(extract))

    assert type(decorated) is wrapper


def test_an_instructor_client_passed_as_an_argument_keys_on_its_configuration(client, fake_llm):
    import instructor
    import openai

    json_client = instructor.from_openai(
        openai.OpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0),
        mode=instructor.Mode.JSON,
    )

    @instructor_cache(backend=MemoryBackend())
    def extract(llm, text: str) -> UserDetail:
        return ask(llm, text)

    with capture_calls() as calls:
        extract(client, "Jason is 25")
        extract(client, "Jason is 25")
        extract(json_client, "Jason is 25")

    assert outcomes(calls) == ["miss", "hit", "miss"]


class Flaky:
    @property
    def model(self) -> str:
        raise RuntimeError("only readable inside a request")


FLAKY = Flaky()


def test_a_value_the_walk_cannot_read_does_not_break_the_call(client, fake_llm):
    @instructor_cache(backend=MemoryBackend())
    def extract(text: str) -> UserDetail:
        model = FLAKY.model if text == "never" else "gpt-4o-mini"
        return ask(client, text, model=model)

    with capture_calls() as calls:
        extract("Jason is 25")
        extract("Jason is 25")

    assert outcomes(calls) == ["miss", "hit"]
