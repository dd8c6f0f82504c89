"""What the library reports reaches the database: outcomes and the reasons for misses."""

from __future__ import annotations

import instructor
import pytest

from extractor.caching import CacheBackend, RedisBackend, bypass, instructor_cache
from extractor.models import Call, Entry
from tests.caching.support import MODEL_BODY, USERS_MODULE, UserDetail, edit
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db


def cached_extraction(client: instructor.Instructor, backend: CacheBackend | None = None):
    @instructor_cache(backend=backend)
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def recorded() -> list[tuple[str, str]]:
    return list(Call.objects.order_by("created_at", "id").values_list("outcome", "miss_reason"))


def test_a_miss_and_a_hit_are_recorded_against_one_entry(client, fake_llm, flush_records):
    extract = cached_extraction(client)

    extract("Jason is 25")
    extract("Jason is 25")
    flush_records()

    assert recorded() == [("miss", "new_input"), ("hit", "")]
    entry = Entry.objects.get()
    assert entry.key == extract.cache.cache_key("Jason is 25")
    assert entry.output == {"name": "name of Jason is 25", "age": 12}
    assert entry.hit_count == 1
    assert set(Call.objects.values_list("entry_id", flat=True)) == {entry.pk}


def test_a_corrupt_value_is_recorded_as_a_corrupt_miss(client, fake_llm, flush_records):
    extract = cached_extraction(client)
    extract("Jason is 25")
    extract.cache.backend().set(extract.cache.cache_key("Jason is 25"), "garbage")

    extract("Jason is 25")
    extract("Jason is 25")
    flush_records()

    assert recorded() == [("miss", "new_input"), ("miss", "corrupt"), ("hit", "")]
    assert Entry.objects.filter(status=Entry.Status.LIVE).count() == 1


def test_a_dead_redis_is_recorded_as_a_backend_error_with_its_text(client, fake_llm, flush_records):
    extract = cached_extraction(client, RedisBackend(f"redis://127.0.0.1:{free_port()}/0"))

    user = extract("Jason is 25")
    flush_records()

    assert user.name == "name of Jason is 25"
    call = Call.objects.get()
    assert (call.outcome, call.miss_reason) == ("miss", "backend_error")
    assert call.error.startswith("ConnectionError")
    assert not Entry.objects.exists()


def test_bypassed_calls_are_recorded_as_bypass_and_store_no_entry(client, fake_llm, flush_records):
    extract = cached_extraction(client)

    with bypass():
        extract("Jason is 25")
        extract("Jason is 25")
    flush_records()

    assert [outcome for outcome, _ in recorded()] == ["bypass", "bypass"]
    assert not Entry.objects.exists()


def test_a_replay_is_recorded_against_the_live_entry(client, fake_llm, flush_records):
    extract = cached_extraction(client)
    extract("Jason is 25")

    extract.cache.replay("Jason is 25")
    flush_records()

    replay = Call.objects.get(outcome="replay")
    assert replay.entry == Entry.objects.get(status=Entry.Status.LIVE)


def test_a_provider_error_is_recorded_as_an_error(client, fake_llm, flush_records):
    extract = cached_extraction(client)
    fake_llm.fail_next(500)

    with pytest.raises(Exception, match="500"):
        extract("Jason is 25")
    flush_records()

    call = Call.objects.get()
    assert call.outcome == "error"
    assert "500" in call.error
    assert not Entry.objects.exists()


def test_a_result_that_is_not_the_model_is_recorded_without_an_entry(
    client, fake_llm, flush_records
):
    @instructor_cache
    def extract(text: str) -> UserDetail:
        return None  # type: ignore[return-value]

    extract("Jason is 25")
    flush_records()

    assert [outcome for outcome, _ in recorded()] == ["miss"]
    assert not Entry.objects.exists()


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        (edit(USERS_MODULE, MODEL_BODY, MODEL_BODY + '    email: str = ""\n'), "schema_changed"),
        (edit(USERS_MODULE, 'f"Text: {text}"', 'f"Read: {text}"'), "code_changed"),
        (edit(USERS_MODULE, "ttl=3600", "ttl=3600, version=2"), "version_changed"),
    ],
    ids=["schema", "code", "version"],
)
def test_a_miss_after_an_edit_is_recorded_with_what_changed(
    modules, fake_llm, flush_records, changed, reason
):
    modules.load("users_extraction", USERS_MODULE).extract_user("Jason is 25")
    modules.load("users_extraction", changed).extract_user("Jason is 25")
    flush_records()

    assert recorded() == [("miss", "new_input"), ("miss", reason)]
