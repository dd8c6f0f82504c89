"""What the benchmark calls: the recipe's model and function, and an offline LLM.

Every implementation wraps the same function body, the recipe's `extract`, which
asks an Instructor client for a `UserDetail`. The client talks to an OpenAI SDK
whose HTTP transport is an in-process `httpx2.MockTransport`: a miss really runs
Instructor (request building, tool-call parsing, validation) and nothing reaches
the network. The transport counts requests, so the benchmark can prove that every
timed call was a hit.

No `from __future__ import annotations` here: the recipe's decorator reads the
return annotation with `inspect.signature` and needs the class, not a string.
"""

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx2
import instructor
import openai
from instructor.cache import BaseCache
from pydantic import BaseModel

MODEL = "gpt-3.5-turbo"  # the recipe's model name
EXAMPLE_INPUT = "Extract jason is 25 years old"  # the recipe's example input
ANSWER = {"name": "jason", "age": 25}


class UserDetail(BaseModel):
    """The recipe's response model."""

    name: str
    age: int


class MockLLM:
    """Answers chat completions with a tool call, as OpenAI does, and counts requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        with self._lock:
            self.requests += 1
            number = self.requests
        return httpx2.Response(200, json=completion(body, number))

    def client(self, cache: BaseCache | None = None) -> instructor.Instructor:
        """An Instructor client on this transport, with Instructor's own `cache=` if given."""
        sdk = openai.OpenAI(
            api_key="bench",
            base_url="http://bench.invalid/v1",
            http_client=httpx2.Client(transport=httpx2.MockTransport(self.handle)),
        )
        if cache is None:
            return instructor.from_openai(sdk)
        return instructor.from_openai(sdk, cache=cache)


def completion(body: dict[str, Any], number: int) -> dict[str, Any]:
    """The JSON of a chat completion that calls the request's tool (see tests/fake_llm.py)."""
    tool = body["tools"][0]["function"]
    return {
        "id": f"chatcmpl-bench-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": json.dumps(ANSWER)},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }


def extraction(name: str, client: instructor.Instructor) -> Callable[[str], UserDetail]:
    """The recipe's `extract(data) -> UserDetail` on `client`, named `name`.

    Each implementation gets its own name: the recipe puts `__name__` in its keys,
    and `@instructor_cache` records calls per "module:qualname".
    """

    def extract(data: str) -> UserDetail:
        return client.chat.completions.create(
            model=MODEL,
            response_model=UserDetail,
            messages=[
                {"role": "user", "content": data},
            ],
        )

    extract.__name__ = extract.__qualname__ = name
    return extract
