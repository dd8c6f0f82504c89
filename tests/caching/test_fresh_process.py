"""Keys survive a new process: a second interpreter finds what the first one stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the library in other processes: mutmut's mutated copy cannot be imported there,
# so `make mutate` leaves these tests out (README "Mutation testing").
pytestmark = pytest.mark.processes

REPOSITORY = Path(__file__).resolve().parents[2]

# Configured from the environment, as a deployed script would be.
USERS_MODULE = """
import os

import instructor
import openai
from pydantic import BaseModel

from extractor.caching import instructor_cache

client = instructor.from_openai(
    openai.OpenAI(api_key="test", base_url=os.environ["LLM_BASE_URL"], max_retries=0)
)


class UserDetail(BaseModel):
    name: str
    age: int


@instructor_cache(backend=os.environ["CACHE_URL"])
def extract_user(text: str) -> UserDetail:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        response_model=UserDetail,
        messages=[{"role": "user", "content": text}],
    )
"""

SCRIPT = """
import json
import sys

from users_extraction import extract_user

text = sys.argv[1]
user = extract_user(text)
print(json.dumps({"user": user.model_dump(), "key": extract_user.cache.cache_key(text)}))
"""


@pytest.fixture
def run_script(tmp_path: Path, fake_llm):
    """Runs SCRIPT in a new interpreter against the fake provider and `cache_url`."""
    (tmp_path / "users_extraction.py").write_text(USERS_MODULE)
    (tmp_path / "extract.py").write_text(SCRIPT)

    def run(cache_url: str, text: str = "Jason is 25") -> dict:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPOSITORY)]),
            "LLM_BASE_URL": fake_llm.base_url,
            "CACHE_URL": cache_url,
        }
        done = subprocess.run(
            [sys.executable, str(tmp_path / "extract.py"), text],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


def test_a_second_process_is_served_from_the_disk_cache(run_script, fake_llm, tmp_path):
    cache_url = f"disk://{tmp_path / 'cache'}"

    first = run_script(cache_url)
    assert fake_llm.count == 1
    second = run_script(cache_url)

    assert fake_llm.count == 1
    assert second == first
    assert first["user"] == {"name": "name of Jason is 25", "age": 12}


def test_a_second_process_is_served_from_redis(
    run_script, fake_llm, redis_cache_url, redis_backend
):
    # redis_backend is on the same prefix: its teardown removes the keys stored here.
    first = run_script(redis_cache_url)
    second = run_script(redis_cache_url)

    assert fake_llm.count == 1
    assert second == first
    assert redis_backend.get(first["key"]) is not None
    assert list(redis_backend.scan_keys()) == [first["key"]]


def test_this_process_computes_the_key_another_process_stored(
    run_script, tmp_path, monkeypatch, fake_llm
):
    cache_url = f"disk://{tmp_path / 'cache'}"
    long_text = "Jason is 25 and lives in Leeds. " * 100
    child = run_script(cache_url, long_text)
    monkeypatch.setenv("LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("CACHE_URL", cache_url)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "users_extraction", raising=False)

    from users_extraction import extract_user

    try:
        assert extract_user.cache.cache_key(long_text) == child["key"]
        assert extract_user(long_text).model_dump() == child["user"]
        assert fake_llm.count == 1
        assert extract_user("Sarah is 31").name == "name of Sarah is 31"
        assert fake_llm.count == 2
    finally:
        sys.modules.pop("users_extraction", None)
