"""Fixtures for the caching library: real backends, real clients, modules on disk."""

from __future__ import annotations

import importlib
import linecache
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import instructor
import openai
import pytest

from extractor.caching import DiskBackend, MemoryBackend, RedisBackend, backend_from_url
from extractor.caching.defaults import state as cache_defaults
from extractor.caching.events import NullRecorder, set_recorder
from tests.fake_llm import FakeLLM


@pytest.fixture(autouse=True)
def _record_nowhere_without_database(request, _isolated_cache) -> Iterator[None]:
    """Tests without the database must not leave call records for a later flush to write."""
    if request.node.get_closest_marker("django_db"):
        yield
        return
    previous = set_recorder(NullRecorder())
    yield
    set_recorder(previous)


@pytest.fixture
def client(fake_llm: FakeLLM) -> Iterator[instructor.Instructor]:
    raw = openai.OpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0)
    yield instructor.from_openai(raw)
    raw.close()


@pytest.fixture
def aclient(fake_llm: FakeLLM) -> instructor.AsyncInstructor:
    raw = openai.AsyncOpenAI(api_key="test", base_url=fake_llm.base_url, max_retries=0)
    return instructor.from_openai(raw)


@pytest.fixture
def memory_backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def disk_backend(tmp_path: Path) -> Iterator[DiskBackend]:
    backend = DiskBackend(tmp_path / "diskcache")
    yield backend
    backend.close()


@pytest.fixture
def redis_backend(redis_cache_url: str) -> Iterator[RedisBackend]:
    backend = backend_from_url(redis_cache_url)
    assert isinstance(backend, RedisBackend)
    yield backend
    backend.clear()
    backend.close()


@pytest.fixture(params=["memory", "disk", "redis"])
def backend(request):
    """Each real backend in turn."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def retry_after() -> Iterator[Callable[[float], None]]:
    """Set how long a decorated function skips a failed backend (restored afterwards)."""
    saved = cache_defaults.retry_after

    def set_retry_after(seconds: float) -> None:
        cache_defaults.retry_after = seconds

    yield set_retry_after
    cache_defaults.retry_after = saved


class ModuleFiles:
    """Writes Python modules to a directory on sys.path and imports them afresh.

    `__BASE_URL__` and `__CACHE_URL__` in a source stand for the fake provider's
    URL and a disk cache shared by every version of the module in the test.
    """

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = directory
        self.substitutions = {
            "__BASE_URL__": base_url,
            "__CACHE_URL__": f"disk://{directory / 'shared-cache'}",
        }
        self.names: set[str] = set()

    def load(self, name: str, source: str) -> ModuleType:
        text = textwrap.dedent(source)
        for placeholder, value in self.substitutions.items():
            text = text.replace(placeholder, value)
        path = self.directory / f"{name}.py"
        path.write_text(text)
        # An edit of the same length within the same second must not be served
        # from the previous version's bytecode or cached source lines.
        shutil.rmtree(self.directory / "__pycache__", ignore_errors=True)
        linecache.clearcache()
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        self.names.add(name)
        return importlib.import_module(name)

    def forget(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)


@pytest.fixture
def modules(tmp_path: Path, monkeypatch, fake_llm: FakeLLM) -> Iterator[ModuleFiles]:
    directory = tmp_path / "modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    files = ModuleFiles(directory, fake_llm.base_url)
    yield files
    files.forget()
