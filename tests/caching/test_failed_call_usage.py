"""A call that fails after Instructor's retries is recorded with the tokens it was billed."""

from __future__ import annotations

import instructor
import pytest
from instructor.core.exceptions import InstructorRetryException

from extractor.caching import capture_calls, instructor_cache
from extractor.models import Call, CallRollup
from tests.caching.support import UserDetail

pytestmark = pytest.mark.django_db

NOT_AN_AGE = {"name": "Jason", "age": "not a number"}


def failing_extraction(client: instructor.Instructor):
    @instructor_cache
    def extract(text: str) -> UserDetail:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=UserDetail,
            max_retries=2,
            messages=[{"role": "user", "content": text}],
        )

    return extract


def test_an_error_after_retries_records_the_tokens_of_every_attempt(
    client, fake_llm, flush_records
):
    fake_llm.answer_with(NOT_AN_AGE)
    fake_llm.report_usage(prompt_tokens=200, completion_tokens=15, cached_tokens=64)
    extract = failing_extraction(client)

    with capture_calls() as records, pytest.raises(InstructorRetryException):
        extract("Jason is 25")
    flush_records()

    assert fake_llm.count == 3
    assert records[0].tokens.prompt_tokens == 600  # the event itself, for any recorder
    call = Call.objects.get()
    assert call.outcome == "error"
    assert (call.prompt_tokens, call.completion_tokens, call.cached_prompt_tokens) == (
        600,
        45,
        192,
    )
    # The counters the overview reads count what the failure cost as well.
    rollup = CallRollup.objects.get(span="hour", outcome="error")
    assert (rollup.prompt_tokens, rollup.completion_tokens) == (600, 45)


def test_an_error_that_reports_no_usage_records_zero_tokens(client, fake_llm, flush_records):
    fake_llm.fail_next(500)
    extract = failing_extraction(client)

    with pytest.raises(Exception, match="500"):
        extract("Jason is 25")
    flush_records()

    call = Call.objects.get()
    assert (call.outcome, call.prompt_tokens, call.completion_tokens) == ("error", 0, 0)
