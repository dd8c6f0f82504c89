"""Short, human-readable text for a call's arguments, with secrets masked."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from extractor.caching.keys import canonical_json
from extractor.redaction import redact

PREVIEW_LENGTH = 300


def input_preview(arguments: Any) -> str:
    if isinstance(arguments, dict):
        texts = [value for value in arguments.values() if isinstance(value, str)]
        text = " · ".join(texts) if texts else orjson.dumps(arguments).decode()
    elif isinstance(arguments, str):
        text = arguments
    else:
        text = orjson.dumps(arguments).decode()
    # Masked before truncation: a key cut in half no longer looks like a key.
    text = " ".join(redact(text).split())
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


def input_fingerprint(
    *, namespace: str, function: str, arguments: Any, model_argument: str | None
) -> str:
    """Same question, whatever the model: the arguments without the model argument."""
    if model_argument and isinstance(arguments, dict) and model_argument in arguments:
        arguments = {name: value for name, value in arguments.items() if name != model_argument}
    return hashlib.sha256(canonical_json([namespace, function, arguments])).hexdigest()


def model_of(arguments: Any, model_argument: str | None, fallback: str) -> str:
    if model_argument and isinstance(arguments, dict):
        value = arguments.get(model_argument)
        if isinstance(value, str) and value:
            return value
    return fallback
