"""No secret reaches a recorded row: not the provider's API key, whatever the provider
answers, nor a secret passed as an argument, nor a cache backend's password."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import serializers

from extractor import extraction
from extractor.caching import instructor_cache
from extractor.models import CachedFunction, Call, Entry, SchemaVersion
from tests.conftest import TEST_API_KEY
from tests.fake_llm import user_text
from tests.recording.helpers import as_function, person_model

pytestmark = pytest.mark.django_db


def everything_recorded() -> str:
    rows = [
        *Call.objects.all(),
        *Entry.objects.all(),
        *CachedFunction.objects.all(),
        *SchemaVersion.objects.all(),
    ]
    return serializers.serialize("json", rows)


def test_a_rejected_key_is_recorded_as_an_error_without_the_key(fake_llm, flush_records):
    fake_llm.fail_next(401, message="Incorrect API key provided.")

    with pytest.raises(Exception, match="401"):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    call = Call.objects.get()
    assert call.outcome == "error"
    assert "401" in call.error
    assert TEST_API_KEY not in everything_recorded()


def test_a_provider_that_echoes_the_key_in_its_error_does_not_leak_it_into_the_call_log(
    fake_llm, flush_records
):
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")

    with pytest.raises(Exception, match="401") as raised:
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    assert TEST_API_KEY in str(raised.value)  # what the provider sent back...
    call = Call.objects.get()
    assert call.outcome == "error"
    assert "Incorrect API key provided: ***" in call.error
    assert TEST_API_KEY not in everything_recorded()  # ...is not what was stored


def test_the_key_is_in_no_row_after_errors_misses_and_hits(fake_llm, flush_records):
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")
    with pytest.raises(Exception, match="401"):
        extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    extraction.extract("Jason is 25", "UserDetail", "gpt-4o-mini")
    flush_records()

    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["error", "hit", "miss"]
    assert Entry.objects.count() == 1
    assert TEST_API_KEY not in everything_recorded()


# Secrets a caller might pass as an argument, built from pieces so that no
# scanner mistakes this file for a leak.
ARGUMENT_SECRETS = {
    "openai project key": "sk-proj-" + "Ab3" * 16,
    "anthropic key": "sk-ant-api03-" + "Zx9" * 14,
    "bearer token": "Authorization: Bearer " + "tok3n" * 6,
    "aws access key": "AKIA" + "Q7ZX" * 4,
    "github token": "ghp_" + "a1B2" * 9,
    "slack token": "xoxb-" + "1234567890-" + "qwErty" * 4,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNlY3JldA",
    "password in a url": "postgres://app:Hunter2-db-pw@db.internal:5432/app",
}
SECRET_PARTS = {
    "bearer token": "tok3n" * 6,
    "password in a url": "Hunter2-db-pw",
}


def secret_part(kind: str) -> str:
    """The part of the sample that must not be stored (the rest is context)."""
    return SECRET_PARTS.get(kind, ARGUMENT_SECRETS[kind])


@pytest.fixture
def echo_text(fake_llm):
    """The provider answers with the user's whole text, as an extraction of it would."""
    fake_llm.answer_with(lambda body: {"name": user_text(body)})
    return fake_llm


@pytest.mark.parametrize("kind", list(ARGUMENT_SECRETS))
def test_a_secret_in_an_argument_is_masked_in_stored_arguments_previews_and_outputs(
    kind, echo_text, make_extractor, flush_records
):
    secret, hidden = ARGUMENT_SECRETS[kind], secret_part(kind)
    extract = make_extractor(person_model())
    text = f"Jason can be reached with {secret} today"

    first = extract(text)
    second = extract(text)
    flush_records()

    assert hidden in first.name  # the caller sees it all
    assert second.name == first.name
    assert echo_text.count == 1
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "miss"]
    entry = Entry.objects.get()
    assert entry.arguments["text"].startswith("Jason can be reached with ")
    assert "***" in entry.arguments["text"]
    assert "***" in entry.output["name"]
    for call in Call.objects.all():
        assert "***" in call.input_preview
        assert call.input_preview.endswith("today · gpt-4o-mini")
    assert hidden not in everything_recorded()


def test_the_cache_key_still_comes_from_the_real_secret(echo_text, make_extractor, flush_records):
    extract = make_extractor(person_model())
    one, other = "ghp_" + "a1B2" * 9, "ghp_" + "c3D4" * 9

    extract(f"Use {one}")
    extract(f"Use {other}")
    extract(f"Use {one}")
    flush_records()

    assert echo_text.count == 2  # different secrets: different keys, though both show as ***
    assert one in user_text(echo_text.requests[0])  # the provider got the real argument
    assert sorted(Call.objects.values_list("outcome", flat=True)) == ["hit", "miss", "miss"]
    assert (
        list(Entry.objects.values_list("arguments", flat=True))
        == [{"text": "Use ghp_***", "model": "gpt-4o-mini"}] * 2
    )
    assert one not in everything_recorded()
    assert other not in everything_recorded()


def test_an_argument_named_like_a_secret_is_masked_whatever_its_shape(llm, fake_llm, flush_records):
    response_model = person_model()

    def extract(text: str, api_key: str) -> Any:
        return llm.chat.completions.create(
            model="gpt-4o-mini",
            response_model=response_model,
            messages=[{"role": "user", "content": text}],
        )

    extract = instructor_cache(as_function(extract, response_model, "extract_with_key"))

    extract("Jason is 25", api_key="hunter2")
    flush_records()

    entry = Entry.objects.get()
    assert entry.arguments == {"text": "Jason is 25", "api_key": "***"}
    assert Call.objects.get().input_preview == "Jason is 25 · ***"
    assert "hunter2" not in everything_recorded()


def test_a_secret_in_the_error_of_a_decorated_function_is_masked(llm, fake_llm, flush_records):
    token = "ghp_" + "e5F6" * 9
    response_model = person_model()

    def extract(text: str, token: str) -> Any:
        raise PermissionError(f"the repository refused {token}")

    extract = instructor_cache(as_function(extract, response_model, "extract_failing"))

    with pytest.raises(PermissionError, match=token):
        extract("Jason is 25", token)
    flush_records()

    call = Call.objects.get()
    assert call.outcome == "error"
    assert call.error == "PermissionError: the repository refused ghp_***"
    assert token not in everything_recorded()


def test_configured_patterns_are_masked_besides_the_built_in_ones(
    settings, echo_text, make_extractor, flush_records
):
    # Secrets that cannot turn up by chance: a bare "9876" once did, inside a digest.
    settings.EXTRACTOR_REDACT_PATTERNS = (r"ACME-\d{6}", r"pin (?P<secret>[A-Z]{2}\d{4})\b")
    extract = make_extractor(person_model())

    extract("Badge ACME-123456, pin QX9876, key sk-proj-" + "Ab3" * 16)
    flush_records()

    entry = Entry.objects.get()
    assert entry.arguments["text"] == "Badge ***, pin ***, key sk-***"
    assert Call.objects.get().input_preview == "Badge ***, pin ***, key sk-*** · gpt-4o-mini"
    recorded = everything_recorded()
    assert "ACME-123456" not in recorded
    assert "QX9876" not in recorded


REDIS_PASSWORD = "r3dis-Passw0rd"


@pytest.mark.parametrize(
    "url_form",
    [
        "redis://:{password}@{host}/15?prefix={prefix}",
        "redis://app:{password}@{host}/15?prefix={prefix}",
        "redis://{host}/15?password={password}&prefix={prefix}",
        "rediss://{host}/15?prefix={prefix}&password={password}",
        "unix:///tmp/cachesite-no-such.sock?password={password}&prefix={prefix}",
    ],
)
def test_a_redis_password_is_not_stored_with_the_function(
    url_form, redis_url, make_extractor, fake_llm, flush_records
):
    host, prefix = urlsplit(redis_url).netloc, f"test-{uuid.uuid4().hex[:8]}:"
    url = url_form.format(password=REDIS_PASSWORD, host=host, prefix=prefix)
    extract = make_extractor(person_model(), backend=url)

    extract("Jason is 25")  # the server refuses the password: a recorded miss
    flush_records()

    assert "***" in CachedFunction.objects.get().backend
    assert REDIS_PASSWORD not in everything_recorded()


def test_the_default_backends_password_is_not_stored(
    settings, redis_url, make_extractor, fake_llm, flush_records
):
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    settings.EXTRACTOR_CACHE_URL = f"{redis_url}?password={REDIS_PASSWORD}&prefix={prefix}"
    extract = make_extractor(person_model())

    extract("Jason is 25")
    flush_records()

    assert "password=***" in CachedFunction.objects.get().backend
    assert REDIS_PASSWORD not in everything_recorded()
