"""Fixtures for the recording tests: decorated extractions over the fake provider.

Decorated functions are built at run time (the fake provider's URL is known
only then) and given a fixed "module:qualname", so that two builds stand for
the same function seen twice: once before and once after an edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import instructor
import openai
import pytest

from extractor.caching import instructor_cache
from extractor.caching.events import Recorder, get_recorder, set_recorder
from extractor.recording import DatabaseRecorder
from tests.recording.helpers import as_function


@pytest.fixture
def llm(fake_llm) -> instructor.Instructor:
    """An Instructor client over the real openai client, spoken to the fake provider."""
    return instructor.from_openai(
        openai.OpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0)
    )


@pytest.fixture
def make_extractor(llm) -> Callable[..., Any]:
    """make_extractor(response_model, name=..., **cache options) -> a decorated extraction.

    Every build has the same source, so builds differ only by what is passed in.
    """

    def make(
        response_model: type, *, name: str = "extract_person", **options: Any
    ) -> Callable[..., Any]:
        def extract(text: str, model: str = "gpt-4o-mini") -> Any:
            return llm.chat.completions.create(
                model=model,
                response_model=response_model,
                messages=[{"role": "user", "content": text}],
            )

        return instructor_cache(**options)(as_function(extract, response_model, name))

    return make


@pytest.fixture
def use_recorder() -> Iterator[Callable[[DatabaseRecorder], DatabaseRecorder]]:
    """Install a recorder for the test; put the previous one back and close it after."""
    previous: Recorder = get_recorder()
    installed: list[DatabaseRecorder] = []

    def use(recorder: DatabaseRecorder) -> DatabaseRecorder:
        installed.append(recorder)
        set_recorder(recorder)
        return recorder

    yield use
    set_recorder(previous)
    for recorder in installed:
        recorder.close()
