"""A local stand-in for OpenAI-compatible and Anthropic providers, over real HTTP.

The real openai and anthropic clients and Instructor run unchanged against it;
it answers chat completions (and Anthropic's Messages API) with a tool call
built from the request's tool schema (or a test's own answer), counts requests
and can fail, stall or misbehave on cue.

Usage is what a test scripts with report_usage(); otherwise it is simulated the
way each provider reports prompt caching, with tokens estimated as bytes / 4:

- Anthropic: a text block marked with cache_control is written to the cache by
  the first request that carries it (same model, tools and text) and read by
  the later ones; reads and writes are counted APART from input_tokens
  (additive), writes split by TTL in cache_creation.
- OpenAI: a first message of at least 1,024 tokens is cached automatically; a
  later request with the same model and first message reports it as
  prompt_tokens_details.cached_tokens, counted INSIDE prompt_tokens (inclusive).

Either way the default 120 prompt tokens stand for the question and the
instructions (the last system block), and system content before them is a
context document whose tokens are added.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]

ANTHROPIC_TEST_KEY = "sk-ant-test-cachesite-0123456789"

# OpenAI caches a prompt prefix of at least this many tokens, without being asked.
OPENAI_MIN_CACHED_TOKENS = 1024


def estimate_tokens(text: str) -> int:
    """The fake's token count: UTF-8 bytes / 4 (a provider's tokenizer is not at hand)."""
    return len(text.encode("utf-8")) // 4


@dataclass
class Usage:
    prompt_tokens: int = 120
    completion_tokens: int = 30
    cached_tokens: int = 0
    # Anthropic only: prompt tokens written to its cache by this call, and the part
    # of them written with the 1-hour TTL.
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


@dataclass
class _Script:
    answer: Answer | None = None
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    usage: Usage = field(default_factory=Usage)
    # False until a test scripts the usage: then every answer reports exactly it.
    usage_scripted: bool = False


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._script = _Script()
        self._lock = threading.Lock()
        # The prompt prefixes the simulated providers hold in their caches.
        self._cached_prefixes: set[str] = set()
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

    def serve_anthropic(self, settings: Any) -> None:
        """Point the app's Anthropic settings at this fake (as the fake_llm fixture does
        for OpenAI's)."""
        settings.ANTHROPIC_API_KEY = ANTHROPIC_TEST_KEY
        settings.ANTHROPIC_BASE_URL = self.anthropic_base_url

    @property
    def count(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self._script = _Script()
            self._cached_prefixes.clear()

    def answer_with(self, answer: Answer | dict[str, Any]) -> None:
        """Answer every request with these tool arguments (or a function of the request)."""
        self._script.answer = answer if callable(answer) else (lambda _body: answer)

    def fail_next(self, status: int, times: int = 1, message: str = "scripted failure") -> None:
        body = {"error": {"message": message, "type": "test", "code": str(status)}}
        self._script.failures.extend([(status, body)] * times)

    def stall(self, seconds: float) -> None:
        self._script.delay = seconds

    def report_usage(self, **usage: int) -> None:
        """Report exactly this usage on every answer (no prompt-cache simulation)."""
        self._script.usage = Usage(**usage)
        self._script.usage_scripted = True

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
            if not self._script.usage_scripted:
                usage = self._openai_prompt_cache(body, usage)
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
            if not self._script.usage_scripted:
                usage = self._anthropic_prompt_cache(body, usage)
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
                "cache_creation": {
                    "ephemeral_5m_input_tokens": usage.cache_write_tokens
                    - usage.cache_write_1h_tokens,
                    "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
                },
            },
        }

    # -- simulated prompt caching (called under the lock) --------------------------

    def _seen(self, *parts: Any) -> bool:
        """Whether this prefix is cached already; caches it if not."""
        prefix = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        if prefix in self._cached_prefixes:
            return True
        self._cached_prefixes.add(prefix)
        return False

    def _openai_prompt_cache(self, body: dict[str, Any], usage: Usage) -> Usage:
        messages = body.get("messages", [])
        system = [m for m in messages if m.get("role") in ("system", "developer")]
        context = sum(estimate_tokens(_text_of(m.get("content"))) for m in system[:-1])
        first = estimate_tokens(_text_of(messages[0].get("content"))) if messages else 0
        cached = 0
        if first >= OPENAI_MIN_CACHED_TOKENS and self._seen("openai", body["model"], messages[0]):
            cached = first
        # Inclusive: the cached tokens are part of prompt_tokens.
        return Usage(
            prompt_tokens=usage.prompt_tokens + context,
            completion_tokens=usage.completion_tokens,
            cached_tokens=cached,
        )

    def _anthropic_prompt_cache(self, body: dict[str, Any], usage: Usage) -> Usage:
        system = body.get("system")
        system_blocks = [_block(b) for b in system] if isinstance(system, list) else []
        message_blocks = [
            _block(b)
            for m in body.get("messages", [])
            if isinstance(m.get("content"), list)
            for b in m["content"]
        ]
        fresh = read = write = write_1h = 0
        for block in system_blocks[:-1]:
            if "cache_control" not in block:
                fresh += estimate_tokens(block.get("text", ""))
        for block in system_blocks + message_blocks:
            control = block.get("cache_control")
            if not control:
                continue
            tokens = estimate_tokens(block.get("text", ""))
            if self._seen("anthropic", body["model"], body.get("tools"), block.get("text")):
                read += tokens
            else:
                write += tokens
                write_1h += tokens if control.get("ttl") == "1h" else 0
        # Usage.prompt_tokens is the total; the response reports input_tokens without
        # the reads and writes (additive), as the real API does.
        return Usage(
            prompt_tokens=usage.prompt_tokens + fresh + read + write,
            completion_tokens=usage.completion_tokens,
            cached_tokens=read,
            cache_write_tokens=write,
            cache_write_1h_tokens=write_1h,
        )


def _block(block: Any) -> dict[str, Any]:
    return block if isinstance(block, dict) else {"type": "text", "text": str(block)}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(_block(part).get("text", "") for part in content)
    return str(content or "")


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
