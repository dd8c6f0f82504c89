"""The built-in extraction behind the web form and the shell.

One cached function per registered schema (the response model is part of the
decorated function's signature), all sharing one prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel

from extractor import llm
from extractor.caching import instructor_cache
from extractor.schemas import get_schema

SYSTEM_PROMPT = (
    "Extract one {schema} from the user's text. Use only facts the text states; "
    "do not invent values."
)
VALIDATION_RETRIES = 2


def extract(text: str, schema_name: str, model: str) -> BaseModel:
    """Extract a `schema_name` object from `text` with `model`, through the cache."""
    return extractor_for(schema_name)(text=text, model=model)  # type: ignore[no-any-return]


@cache
def extractor_for(schema_name: str) -> Callable[..., Any]:
    schema = get_schema(schema_name)

    def extract_schema(text: str, model: str) -> BaseModel:
        return llm.openai_client().chat.completions.create(
            model=model,
            response_model=schema,
            max_retries=VALIDATION_RETRIES,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT.format(schema=schema.__name__)},
                {"role": "user", "content": text},
            ],
        )

    extract_schema.__annotations__["return"] = schema
    extract_schema.__name__ = extract_schema.__qualname__ = f"extract_{schema.__name__}"
    return instructor_cache(extract_schema)


def __getattr__(name: str) -> Callable[..., Any]:
    # "extractor.extraction:extract_UserDetail" names an entry's function; this lets
    # replay find it by import even before the form has used that schema.
    if name.startswith("extract_"):
        try:
            return extractor_for(name.removeprefix("extract_"))
        except LookupError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
