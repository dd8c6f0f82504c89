"""The key follows what shapes the request, and nothing else, across processes.

A small project (a prompts module, a helpers module, a document, an app module
with one decorated function per pattern) is run in a fresh interpreter, edited,
and run in another: every function whose request changed must miss (one more
request at the fake provider), every other one must hit, including arguments
that once collided or missed for nothing and outputs that once never hit. Both
runs are made once for the module; each test reads the outcome of its function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_llm import FakeLLM

# Runs the library in other processes: mutmut's mutated copy cannot be imported there,
# so `make mutate` leaves these tests out (README "Mutation testing").
pytestmark = pytest.mark.processes

REPOSITORY = Path(__file__).resolve().parents[2]

PROMPTS = """
SYSTEM = "You extract the user mentioned in a text."
"""

HELPERS = """
def build_messages(text):
    return [{"role": "user", "content": f"Extract the user: {text}"}]
"""

APP = """
import enum
import os
from decimal import Decimal
from pathlib import Path

import instructor
import openai
from pydantic import BaseModel, Field, ValidationInfo, field_validator

import helpers
import prompts
from extractor.caching import instructor_cache

BASE_URL = os.environ["LLM_BASE_URL"]
CACHE = os.environ["CACHE_URL"]
client = instructor.from_openai(openai.OpenAI(api_key="test", base_url=BASE_URL, max_retries=0))
strict_client = instructor.from_openai(
    openai.OpenAI(api_key="test", base_url=BASE_URL, max_retries=0),
    mode=instructor.Mode.TOOLS,
)
provider_client = instructor.from_provider(
    "openai/gpt-4o-mini", base_url=BASE_URL, api_key="test", max_retries=0
)

FEW_SHOT = ["Jason is 25 -> Jason, 25"]
EXAMPLES = {"style": "terse"}
BUILD = lambda text: f"Text: {text}"


class UserDetail(BaseModel):
    name: str
    age: int


class TidyUser(BaseModel):
    name: str
    age: int

    @field_validator("name")
    @classmethod
    def tidy(cls, value):
        return value.strip()


class AppSettings:
    def __init__(self):
        self.model = os.environ.get("SETTINGS_MODEL", "gpt-4o-mini")


settings = AppSettings()


def ask(messages, model="gpt-4o-mini", response_model=UserDetail, llm=client):
    return llm.chat.completions.create(
        model=model, response_model=response_model, messages=messages
    )


@instructor_cache(backend=CACHE)
def unchanged(text: str) -> UserDetail:
    return ask([{"role": "user", "content": text}])


@instructor_cache(backend=CACHE)
def local_helper(text: str) -> UserDetail:
    return ask(_messages(text))


def _messages(text):  # defined below its caller, as helpers often are
    return [{"role": "user", "content": f"Who is in: {text}"}]


@instructor_cache(backend=CACHE)
def helper_in_other_module(text: str) -> UserDetail:
    return ask(helpers.build_messages(text))


@instructor_cache(backend=CACHE)
def module_attribute(text: str) -> UserDetail:
    return ask([{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": text}])


@instructor_cache(backend=CACHE)
def few_shot_list(text: str) -> UserDetail:
    system = "\\n".join(FEW_SHOT)
    return ask([{"role": "system", "content": system}, {"role": "user", "content": text}])


@instructor_cache(backend=CACHE)
def few_shot_dict(text: str) -> UserDetail:
    system = EXAMPLES["style"]
    return ask([{"role": "system", "content": system}, {"role": "user", "content": text}])


@instructor_cache(backend=CACHE)
def module_lambda(text: str) -> UserDetail:
    return ask([{"role": "user", "content": BUILD(text)}])


def make_extractor(instruction):
    @instructor_cache(backend=CACHE)
    def closure(text: str) -> UserDetail:
        return ask([{"role": "system", "content": instruction}, {"role": "user", "content": text}])

    return closure


closure = make_extractor("Be brief.")


@instructor_cache(backend=CACHE)
def model_from_environment(text: str) -> UserDetail:
    model = os.environ.get("APP_MODEL", "gpt-4o-mini")
    return ask([{"role": "user", "content": text}], model=model)


@instructor_cache(backend=CACHE)
def model_from_settings(text: str) -> UserDetail:
    return ask([{"role": "user", "content": text}], model=settings.model)


@instructor_cache(backend=CACHE)
def client_mode(text: str) -> UserDetail:
    return ask([{"role": "user", "content": text}], llm=strict_client)


@instructor_cache(backend=CACHE)
def provider_model_string(text: str) -> UserDetail:
    return provider_client.chat.completions.create(
        response_model=UserDetail, messages=[{"role": "user", "content": text}]
    )


@instructor_cache(backend=CACHE)
def validator(text: str) -> TidyUser:
    return ask([{"role": "user", "content": text}], response_model=TidyUser)


@instructor_cache(backend=CACHE)
def docstring(text: str) -> UserDetail:
    return ask([{"role": "user", "content": text}])


class Tone(enum.Enum):
    FORMAL = "f"


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")
    age: int


class Checked(BaseModel):
    name: str
    age: int

    @field_validator("name")
    @classmethod
    def needs_context(cls, value, info: ValidationInfo):
        if not info.context:
            raise ValueError("validated without its context")
        return value


class Secretive(BaseModel):
    name: str
    age: int = Field(exclude=True)


@instructor_cache(backend=CACHE)
def enum_argument(tone) -> UserDetail:
    label = tone.name if isinstance(tone, Tone) else str(tone)
    return ask([{"role": "user", "content": f"Jason is 25, say it {label}"}])


@instructor_cache(backend=CACHE)
def decimal_argument(price: Decimal) -> UserDetail:
    return ask([{"role": "user", "content": f"Jason is 25 and paid {float(price)}"}])


@instructor_cache(backend=CACHE)
def path_argument(path: Path) -> UserDetail:
    return ask([{"role": "user", "content": path.read_text()}])


@instructor_cache(backend=CACHE)
def aliased_output(text: str) -> Aliased:
    return ask([{"role": "user", "content": text}], response_model=Aliased)


@instructor_cache(backend=CACHE)
def context_validator(text: str) -> Checked:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        response_model=Checked,
        messages=[{"role": "user", "content": text}],
        context={"checked": True},
    )


@instructor_cache(backend=CACHE)
def required_excluded_output(text: str) -> Secretive:
    return ask([{"role": "user", "content": text}], response_model=Secretive)


# What the runner passes; every other function gets the same text.
ARGUMENTS = {
    "enum_argument": (Tone.FORMAL,),
    "decimal_argument": (Decimal("19.9"),),
    "path_argument": (Path(__file__).with_name("document.txt"),),
}
"""

# Each edit changes what one function sends, and nothing else.
EDITS: dict[str, tuple[str, str, str]] = {
    "local_helper": ("app.py", "Who is in: {text}", "Name the person in: {text}"),
    "helper_in_other_module": ("helpers.py", "Extract the user: {text}", "Find the user: {text}"),
    "module_attribute": ("prompts.py", "You extract the user", "You extract the person"),
    "few_shot_list": ("app.py", "Jason is 25 -> Jason, 25", "Ann is 30 -> Ann, 30"),
    "few_shot_dict": ("app.py", '{"style": "terse"}', '{"style": "verbose"}'),
    "module_lambda": ("app.py", 'f"Text: {text}"', 'f"Input: {text}"'),
    "closure": ("app.py", '"Be brief."', '"Be thorough."'),
    "client_mode": ("app.py", "mode=instructor.Mode.TOOLS,", "mode=instructor.Mode.JSON,"),
    "provider_model_string": ("app.py", '"openai/gpt-4o-mini"', '"openai/gpt-4o"'),
    "validator": ("app.py", "return value.strip()", "return value.strip().title()"),
    # The second run passes the Enum's raw value, which the function words differently.
    "enum_argument": ("app.py", '"enum_argument": (Tone.FORMAL,)', '"enum_argument": ("f",)'),
    "path_argument": ("document.txt", "Jason is 25", "Ann is 30"),
    # Not a change of the request: the same answer must be served.
    "decimal_argument": (
        "app.py",
        '"decimal_argument": (Decimal("19.9"),)',
        '"decimal_argument": (Decimal("19.90"),)',
    ),
    "docstring": (
        "app.py",
        "def docstring(text: str) -> UserDetail:\n",
        'def docstring(text: str) -> UserDetail:\n    """Extract the user."""\n',
    ),
}
# Changed through the environment of the second run, not by an edit.
ENVIRONMENT_CHANGES = {
    "model_from_environment": {"APP_MODEL": "gpt-4o"},
    "model_from_settings": {"SETTINGS_MODEL": "gpt-4o"},
}
# Same request in both runs: each once missed for nothing (or was never cached).
MUST_HIT = {
    "unchanged",
    "docstring",
    "decimal_argument",
    "aliased_output",
    "context_validator",
    "required_excluded_output",
}
MUST_MISS = (set(EDITS) | set(ENVIRONMENT_CHANGES)) - MUST_HIT

RUN_ALL = """
import json
import sys

import app
from extractor.caching import capture_calls

outcomes = {}
for name in sys.argv[1:]:
    with capture_calls() as calls:
        getattr(app, name)(*app.ARGUMENTS.get(name, ("Jason is 25 years old",)))
    (record,) = calls
    outcomes[name] = "hit" if isinstance(record, tuple) else record.outcome
print(json.dumps(outcomes))
"""


def run_python(
    project: Path, code: str, fake_llm: FakeLLM, args: list[str], env: dict[str, str] | None = None
) -> str:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), str(REPOSITORY)]),
        "LLM_BASE_URL": fake_llm.base_url,
        "CACHE_URL": f"disk://{project / 'cache'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, _fake_llm_server: FakeLLM) -> dict[str, Any]:
    """Outcomes and upstream requests of a first run, and of a second after the edits."""
    fake_llm = _fake_llm_server
    fake_llm.reset()
    project = tmp_path_factory.mktemp("project")
    sources = {"app": APP, "helpers": HELPERS, "prompts": PROMPTS}
    for module, source in sources.items():
        (project / f"{module}.py").write_text(source)
    (project / "document.txt").write_text("Jason is 25 years old")
    names = sorted(MUST_MISS | MUST_HIT)

    first = json.loads(run_python(project, RUN_ALL, fake_llm, names))
    first_requests = fake_llm.count
    for filename, old, new in EDITS.values():
        source = (project / filename).read_text()
        assert source.count(old) == 1, f"{old!r} must occur once in {filename}"
        (project / filename).write_text(source.replace(old, new))
    changed_environment = {k: v for env in ENVIRONMENT_CHANGES.values() for k, v in env.items()}
    second = json.loads(run_python(project, RUN_ALL, fake_llm, names, changed_environment))
    second_requests = fake_llm.count - first_requests
    fake_llm.reset()
    return {
        "first": first,
        "second": second,
        "first_requests": first_requests,
        "second_requests": second_requests,
    }


def test_the_first_run_computes_every_function(two_runs):
    assert set(two_runs["first"].values()) == {"miss"}
    assert two_runs["first_requests"] == len(two_runs["first"])


@pytest.mark.parametrize("name", sorted(MUST_MISS))
def test_a_change_outside_the_function_body_misses(two_runs, name):
    assert two_runs["second"][name] == "miss"


@pytest.mark.parametrize("name", sorted(MUST_HIT))
def test_what_does_not_change_the_request_still_hits(two_runs, name):
    assert two_runs["second"][name] == "hit"


def test_the_second_run_asks_the_provider_once_per_changed_request(two_runs):
    assert two_runs["second_requests"] == len(MUST_MISS)


def test_a_script_run_as_main_and_then_imported_shares_its_entries(tmp_path, fake_llm):
    project = tmp_path / "project"
    project.mkdir()
    (project / "users.py").write_text(
        APP.split("FEW_SHOT")[0]
        + """
class UserDetail(BaseModel):
    name: str
    age: int


@instructor_cache(backend=CACHE)
def extract(text: str) -> UserDetail:
    return client.chat.completions.create(
        model="gpt-4o-mini", response_model=UserDetail, messages=[{"role": "user", "content": text}]
    )


if __name__ == "__main__":
    print(extract.cache.info.name, extract("Jason is 25").name)
"""
    )
    (project / "helpers.py").write_text(HELPERS)
    (project / "prompts.py").write_text(PROMPTS)

    as_script = run_python(project, "", fake_llm, ["users.py"])
    imported = run_python(
        project,
        "import users; print(users.extract.cache.info.name, users.extract('Jason is 25').name)",
        fake_llm,
        [],
    )

    assert as_script.split()[0] == imported.split()[0] == "users:extract"
    assert fake_llm.count == 1


SERVICE = """
import os

from pydantic import BaseModel

from extractor.caching import instructor_cache


class UserDetail(BaseModel):
    name: str
    age: int


class Service:
    def __init__(self, model):
        self.model, self.tone, self.style = model, "plain", "short"

    @instructor_cache(backend="memory://", key=lambda self, text: text)
    def extract(self, text: str) -> UserDetail:
        return self.ask(self.system() + self.user(text) + self.footer(), os.environ.get("X"))

    def system(self):
        return self.tone

    def user(self, text):
        return text + self.style

    def footer(self):
        return "."

    def ask(self, prompt, extra):
        raise AssertionError("not called")


print(Service.extract.cache.info.code_fingerprint)
"""


def test_the_fingerprint_is_the_same_in_every_process_whatever_its_hash_seed(tmp_path):
    (tmp_path / "service.py").write_text(SERVICE)
    fingerprints = set()
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run(
            [sys.executable, "service.py"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPOSITORY)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        fingerprints.add(done.stdout.strip())

    assert len(fingerprints) == 1
