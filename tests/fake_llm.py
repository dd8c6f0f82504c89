"""A local stand-in for an OpenAI-compatible provider, spoken to over real HTTP.

The real openai client and Instructor run unchanged against it; it answers
chat completions with a tool call built from the request's tool schema (or a
test's own answer), counts requests and can fail, stall or misbehave on cue.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Usage:
    prompt_tokens: int = 120
    completion_tokens: int = 30
    cached_tokens: int = 0
    # Anthropic only: prompt tokens written to its cache by this call.
    cache_write_tokens: int = 0


@dataclass
class _Script:
    answer: Answer | None = None
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    usage: Usage = field(default_factory=Usage)


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._script = _Script()
        self._lock = threading.Lock()
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For anthropic.Anthropic(base_url=...), which adds /v1/messages itself."""
        return self.base_url.removesuffix("/v1")

    @property
    def count(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self._script = _Script()

    def answer_with(self, answer: Answer | dict[str, Any]) -> None:
        """Answer every request with these tool arguments (or a function of the request)."""
        self._script.answer = answer if callable(answer) else (lambda _body: answer)

    def fail_next(self, status: int, times: int = 1, message: str = "scripted failure") -> None:
        body = {"error": {"message": message, "type": "test", "code": str(status)}}
        self._script.failures.extend([(status, body)] * times)

    def stall(self, seconds: float) -> None:
        self._script.delay = seconds

    def report_usage(self, **usage: int) -> None:
        self._script.usage = Usage(**usage)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- answering ------------------------------------------------------------------

    def _respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            failure = self._script.failures.pop(0) if self._script.failures else None
            delay = self._script.delay
            answer = self._script.answer
            usage = self._script.usage
        if delay:
            time.sleep(delay)
        if failure is not None:
            return failure
        if "tools" in body:
            tool = body["tools"][0]["function"]
            arguments = answer(body) if answer else example_for(tool["parameters"], body)
            choice: dict[str, Any] = {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": tool["name"],
                                "arguments": json.dumps(arguments),
                            },
                        }
                    ],
                },
            }
        else:  # Instructor's JSON modes: the schema is in the system message
            schema = schema_in_messages(body)
            arguments = answer(body) if answer else example_for(schema, body)
            choice = {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": json.dumps(arguments)},
            }
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            },
        }

    def _respond_anthropic(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Anthropic's Messages API: a tool_use block, usage with prompt-cache counts."""
        with self._lock:
            self.requests.append(body)
            failure = self._script.failures.pop(0) if self._script.failures else None
            answer, usage = self._script.answer, self._script.usage
        if failure is not None:
            return failure
        tool = body["tools"][0]
        arguments = answer(body) if answer else example_for(tool["input_schema"], body)
        # Anthropic counts input_tokens apart from what was read from or written to its cache.
        fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        return 200, {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": arguments}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": fresh,
                "output_tokens": usage.completion_tokens,
                "cache_read_input_tokens": usage.cached_tokens,
                "cache_creation_input_tokens": usage.cache_write_tokens,
            },
        }


def user_text(body: dict[str, Any]) -> str:
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, list):  # content blocks, as with Anthropic's cache_control
        return " ".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)


def schema_in_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema Instructor's JSON modes write into a system message."""
    decoder = json.JSONDecoder()
    for message in body["messages"]:
        content = message.get("content")
        if message["role"] != "system" or not isinstance(content, str):
            continue
        for start in (i for i, char in enumerate(content) if char == "{"):
            try:
                schema, _end = decoder.raw_decode(content, start)
            except ValueError:
                continue
            if isinstance(schema, dict) and "properties" in schema:
                return schema
    return {}


def example_for(schema: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A value for every property, derived from the user's text so answers differ by input."""
    text = user_text(body)
    values: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type")
        if kind == "integer":
            values[name] = len(text) % 90 + 1
        elif kind == "number":
            values[name] = len(text) / 10
        elif kind == "boolean":
            values[name] = True
        elif kind == "array":
            values[name] = []
        else:
            values[name] = f"{name} of {text[:40]}"
    return values


def _make_handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path.endswith("/chat/completions"):
                status, payload = fake._respond(body)
            elif self.path.endswith("/v1/messages"):
                status, payload = fake._respond_anthropic(body)
            else:
                status, payload = 404, {"error": {"message": f"no route {self.path}"}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
