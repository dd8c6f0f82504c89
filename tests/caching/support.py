"""What the caching tests share: the recipe's response model and small helpers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from extractor.caching import CacheBackend, instructor_cache
from extractor.caching.events import CallEvent

KEY = re.compile(r"[0-9a-f]{64}")


class UserDetail(BaseModel):
    name: str
    age: int


def cached_extraction(client: Any, backend: CacheBackend) -> Any:
    """The recipe's extraction on `client`, cached on `backend`."""

    @instructor_cache(backend=backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def outcomes(records: list[Any]) -> list[str]:
    """The outcome of each captured call: hits are bare tuples, the rest CallEvents."""
    return ["hit" if isinstance(record, tuple) else record.outcome for record in records]


def computed(records: list[Any]) -> list[CallEvent]:
    """The captured calls that ran the function (everything but hits)."""
    return [record for record in records if isinstance(record, CallEvent)]


# A module as a team would write it; ModuleFiles fills in the two URLs.
USERS_MODULE = """
import instructor
import openai
from pydantic import BaseModel, Field

from extractor.caching import instructor_cache

client = instructor.from_openai(
    openai.OpenAI(api_key="test", base_url="__BASE_URL__", max_retries=0)
)

PROMPT = "You extract the user mentioned in a text."


class UserDetail(BaseModel):
    name: str
    age: int


@instructor_cache(backend="__CACHE_URL__", ttl=3600)
def extract_user(text: str) -> UserDetail:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        response_model=UserDetail,
        messages=[
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": f"Text: {text}"},
        ],
    )
"""

MODEL_BODY = "    name: str\n    age: int\n"


def edit(source: str, old: str, new: str) -> str:
    assert old in source, f"{old!r} is not in the module"
    return source.replace(old, new)
