"""A process for cross-process stampedes (test_single_flight_processes.py).

    python -m tests.caching.flight_worker LLM_BASE_URL

Started once and reused (importing Instructor takes seconds). For each call it
reads two lines on stdin: a JSON command {"cache_url", "text", "lease"}, after
which it prepares and prints "ready"; then "go", when it makes the cached call
(so the test releases every process at the same moment) and prints one JSON
line: what it got, how long it took, whether another caller's computation
served it, and what its recorded miss noted.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import instructor
import openai
from pydantic import BaseModel

from extractor.caching import capture_calls, configure, instructor_cache
from extractor.caching.events import CallEvent, CoalescedHit


class UserDetail(BaseModel):
    name: str
    age: int


def cached_call(client: instructor.Instructor, cache_url: str) -> Any:
    # The same function in every process and every round: the same key.
    @instructor_cache(backend=cache_url)
    def extract_user(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract_user


def one_call(client: instructor.Instructor, command: dict[str, Any]) -> dict[str, object]:
    configure(single_flight_lease=command["lease"])
    extract_user = cached_call(client, command["cache_url"])
    text = command["text"]
    report: dict[str, object] = {"key": extract_user.cache.cache_key(text)}
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    with capture_calls() as records:
        try:
            report["user"] = extract_user(text).model_dump()
        except Exception as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
    report["seconds"] = time.monotonic() - started
    report["coalesced"] = any(type(record) is CoalescedHit for record in records)
    report["notes"] = [
        record.error for record in records if isinstance(record, CallEvent) and record.error
    ]
    return report


def main(base_url: str) -> None:
    client = instructor.from_openai(
        openai.OpenAI(api_key="test", base_url=base_url, max_retries=0, timeout=30)
    )
    print("started", flush=True)
    for line in sys.stdin:
        print(json.dumps(one_call(client, json.loads(line))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
