"""The tally, on its own: how records fold into counts, rows, segments, and merge.

A `Tally` is pure Python (no database): these tests fold hand-built records into
one and read what it holds. A hit is a bare tuple `(info, key, started, latency)`;
a computed call is a `CallEvent`. `started` is a perf_counter reading and
`_WALL_OFFSET + started` its wall time, so `started_at` places a record in a
chosen second of a chosen hour.
"""

from __future__ import annotations

from typing import Any

import pytest

from extractor.caching.envelope import Envelope, Usage
from extractor.caching.events import _WALL_OFFSET, CallEvent, FunctionInfo, Outcome
from extractor.models import LATENCY_BOUNDS_MS
from extractor.recording.tally import HOUR, CountedOnly, ItemiseBudget, Tally

# The start of an hour (1_800_000_000 is a multiple of 3600), some time ahead.
FIRST_HOUR = 1_800_000_000 // HOUR
BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def function(name: str = "extract_person") -> FunctionInfo:
    return FunctionInfo(
        name=f"tests.recording.functions:{name}",
        namespace="",
        version="",
        code_fingerprint="code",
        schema_name="tests.recording.schemas.Person",
        schema_fingerprint="schema",
        json_schema={},
    )


EXTRACT = function()
SUMMARISE = function("summarise")


def started_at(second: float, *, hour: int = 0) -> float:
    """The perf_counter reading whose wall time is `second` seconds into hour `hour`."""
    return (FIRST_HOUR + hour) * HOUR + second - _WALL_OFFSET


def hit(
    key: str = "k1",
    *,
    second: float = 0.5,
    hour: int = 0,
    latency: float = 0.0002,
    info: FunctionInfo = EXTRACT,
) -> tuple[FunctionInfo, str, float, float]:
    return (info, key, started_at(second, hour=hour), latency)


def computed(
    outcome: str = Outcome.MISS,
    key: str = "k1",
    *,
    second: float = 0.5,
    hour: int = 0,
    latency: float = 0.8,
    model: str | None = "gpt-4o-mini",
    usage: Usage | None = None,
    stored: bool = False,
    info: FunctionInfo = EXTRACT,
) -> CallEvent:
    """A computed call; with a model, it returned an envelope carrying `usage`."""
    envelope: Envelope[Any] | None = None
    if model is not None:
        envelope = Envelope(
            schema_fingerprint="schema",
            created_at=0.0,
            output={"name": "Ada"},
            llm_model=model,
            usage=usage or Usage(),
        )
        usage = None
    return CallEvent(
        outcome=outcome,
        info=info,
        key=key,
        arguments_json=b'["Ada Lovelace"]',
        started=started_at(second, hour=hour),
        latency=latency,
        envelope=envelope,
        stored=stored,
        usage=usage,
    )


def usage(first: int) -> Usage:
    """Usage whose five counts all differ, so that a count added to another shows."""
    return Usage(
        prompt_tokens=first,
        completion_tokens=first + 1,
        cached_prompt_tokens=first + 2,
        cache_write_tokens=first + 3,
        cache_write_1h_tokens=first + 4,
    )


def tokens(counted: CountedOnly) -> tuple[int, int, int, int, int]:
    return (
        counted.prompt_tokens,
        counted.completion_tokens,
        counted.cached_prompt_tokens,
        counted.cache_write_tokens,
        counted.cache_write_1h_tokens,
    )


def distribution(**counts: int) -> list[int]:
    """Bucket counts by name: `under_1ms=2` is the bucket of LATENCY_BOUNDS_MS 1.0."""
    names = {f"under_{bound:g}ms".replace(".", "_"): i for i, bound in enumerate(LATENCY_BOUNDS_MS)}
    names["over"] = len(LATENCY_BOUNDS_MS)
    slots = [0] * BUCKETS
    for name, count in counts.items():
        slots[names[name]] = count
    return slots


def counted_only_tally(*records: Any) -> Tally:
    """A tally with no room for rows: every computed call folded is counted only."""
    tally = Tally(max_rows=0)
    tally.fold(list(records))
    return tally


# --- Computed calls past max_rows: counted only ---


def test_calls_past_the_row_bound_keep_their_latency_count_sum_longest_and_distribution():
    tally = counted_only_tally(
        computed(latency=0.00005),
        computed(latency=0.001),  # exactly a bound: counted under it
        computed(latency=0.0009),
        computed(latency=0.5),
        computed(latency=45.0),
    )

    (counted,) = tally.counted_only.values()
    assert counted.latencies.count == 5
    assert counted.latencies.total == pytest.approx(0.00005 + 0.001 + 0.0009 + 0.5 + 45.0)
    assert counted.latencies.longest == 45.0
    assert counted.latencies.slots == distribution(
        under_0_1ms=1, under_1ms=2, under_1000ms=1, over=1
    )
    assert (tally.dropped, tally.rows, tally.records) == (5, 0, 5)
    assert tally.segments[0].computed == []


def test_calls_past_the_row_bound_add_up_all_five_token_counts():
    tally = counted_only_tally(
        computed(usage=usage(10)),
        computed(usage=usage(200)),
    )

    (counted,) = tally.counted_only.values()
    assert tokens(counted) == (210, 212, 214, 216, 218)


def test_an_error_without_an_envelope_is_counted_under_no_model_with_what_it_billed():
    tally = counted_only_tally(
        computed(Outcome.ERROR, model=None, usage=usage(7), latency=2.5, second=40),
    )

    (counted,) = tally.counted_only.values()
    assert (counted.info, counted.hour, counted.model, counted.outcome) == (
        EXTRACT,
        FIRST_HOUR,
        "",
        "error",
    )
    assert tokens(counted) == (7, 8, 9, 10, 11)
    assert counted.last == started_at(40)
    assert (counted.latencies.count, counted.latencies.total) == (1, 2.5)


def test_counted_only_calls_are_grouped_by_function_hour_model_and_outcome():
    tally = counted_only_tally(
        computed(model="gpt-4o-mini", second=1),
        computed(model="gpt-4o-mini", second=2),
        computed(model="claude-sonnet", second=3),
        computed(Outcome.ERROR, model="gpt-4o-mini", second=4),
        computed(model="gpt-4o-mini", hour=1, second=5),
        computed(model="gpt-4o-mini", info=SUMMARISE, second=6),
    )

    groups = [
        (EXTRACT, FIRST_HOUR, "gpt-4o-mini", "miss", 2),
        (EXTRACT, FIRST_HOUR, "claude-sonnet", "miss", 1),
        (EXTRACT, FIRST_HOUR, "gpt-4o-mini", "error", 1),
        (EXTRACT, FIRST_HOUR + 1, "gpt-4o-mini", "miss", 1),
        (SUMMARISE, FIRST_HOUR, "gpt-4o-mini", "miss", 1),
    ]
    # Each slot is keyed by what its calls share, and counts the calls that share it.
    assert {
        slot: (counted.info, counted.hour, counted.model, counted.outcome, counted.latencies.count)
        for slot, counted in tally.counted_only.items()
    } == {group[:4]: group for group in groups}


def test_a_counted_only_slot_keeps_its_latest_call_whatever_the_order_they_arrive_in():
    tally = counted_only_tally(computed(second=30), computed(second=50), computed(second=10))

    (counted,) = tally.counted_only.values()
    assert counted.last == started_at(50)


def test_computed_calls_keep_their_rows_up_to_the_bound_then_are_counted_only():
    first, second, third = computed(second=1), computed(second=2), computed(second=3)
    tally = Tally(max_rows=2)

    tally.fold([first, second, third])

    assert tally.segments[0].computed == [first, second]
    assert (tally.rows, tally.dropped) == (2, 1)
    (counted,) = tally.counted_only.values()
    assert counted.last == third.started


# --- Hits: counted always, itemised within the budget and the row bound ---


def test_hits_of_a_key_are_folded_per_hour_with_their_latencies_and_latest_hit():
    tally = Tally()
    tally.fold(
        [
            hit(second=20, latency=0.0005),
            hit(second=50, latency=0.02),
            hit(second=10, latency=0.0005),
            hit(hour=1, second=5, latency=0.5),
        ]
    )

    hits = tally.segments[0].hits
    this_hour = hits[(EXTRACT, "k1", FIRST_HOUR)]
    assert this_hour.hour == FIRST_HOUR
    assert this_hour.latencies.count == 3
    assert this_hour.latencies.total == pytest.approx(0.021)
    assert this_hour.latencies.longest == 0.02
    assert this_hour.latencies.slots == distribution(under_1ms=2, under_100ms=1)
    assert this_hour.last == started_at(50)
    next_hour = hits[(EXTRACT, "k1", FIRST_HOUR + 1)]
    assert (next_hour.latencies.count, next_hour.last) == (1, started_at(5, hour=1))


def test_without_a_budget_every_hit_is_itemised_up_to_the_row_bound():
    tally = Tally(max_rows=3)
    tally.fold([hit(second=s) for s in range(5)])

    (key_hits,) = tally.segments[0].hits.values()
    assert key_hits.latencies.count == 5
    assert key_hits.itemised == [(started_at(s), 0.0002) for s in range(3)]
    assert tally.rows == 3
    assert tally.dropped == 0  # hits past the bound are counted, not lost


def test_exactly_the_budget_of_hits_of_one_second_is_itemised():
    tally = Tally(budget=ItemiseBudget(per_second=3))
    tally.fold([hit(second=7 + i / 10) for i in range(5)])

    (key_hits,) = tally.segments[0].hits.values()
    assert len(key_hits.itemised) == tally.rows == 3
    assert key_hits.latencies.count == 5


def test_a_new_second_opens_a_new_budget():
    tally = Tally(budget=ItemiseBudget(per_second=2))
    tally.fold([hit(second=7.1), hit(second=7.2), hit(second=7.3)])
    tally.fold([hit(second=8.1), hit(second=8.2), hit(second=8.3)])

    (key_hits,) = tally.segments[0].hits.values()
    assert [started for started, _ in key_hits.itemised] == [
        started_at(7.1),
        started_at(7.2),
        started_at(8.1),
        started_at(8.2),
    ]


def test_a_late_hit_of_an_earlier_second_does_not_reopen_that_seconds_budget():
    tally = Tally(budget=ItemiseBudget(per_second=2))
    tally.fold([hit(second=7.1), hit(second=8.1), hit(second=8.2), hit(second=7.9)])

    (key_hits,) = tally.segments[0].hits.values()
    assert [started for started, _ in key_hits.itemised] == [
        started_at(7.1),
        started_at(8.1),
        started_at(8.2),
    ]
    assert key_hits.latencies.count == 4


def test_successive_tallies_of_a_process_share_one_seconds_budget():
    budget = ItemiseBudget(per_second=3)
    first, second = Tally(budget=budget), Tally(budget=budget)

    first.fold([hit(second=7.1), hit(second=7.2)])
    second.fold([hit(second=7.3), hit(second=7.4)])

    assert (first.rows, second.rows) == (2, 1)


# --- Segments: a stored miss after hits of its key starts a new one ---


def test_a_stored_miss_after_hits_of_its_key_starts_a_segment_for_the_hits_after_it():
    miss = computed(Outcome.MISS, "k1", stored=True, second=20)
    tally = Tally()

    tally.fold([hit("k1", second=10), hit("k1", second=11), miss, hit("k1", second=30)])

    assert len(tally.segments) == 2
    before, after = tally.segments
    assert before.computed == []
    assert before.hits[(EXTRACT, "k1", FIRST_HOUR)].latencies.count == 2
    assert after.computed == [miss]
    assert after.hits[(EXTRACT, "k1", FIRST_HOUR)].latencies.count == 1
    assert after.hit_keys == {"k1"}


def test_a_stored_miss_starts_a_segment_after_hits_folded_in_an_earlier_batch():
    miss = computed(Outcome.MISS, "k1", stored=True, second=20)
    tally = Tally()

    tally.fold([hit("k1", second=10)])
    tally.fold([miss, hit("k1", second=30)])

    assert [len(segment.hits) for segment in tally.segments] == [1, 1]
    assert tally.segments[1].computed == [miss]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(computed(Outcome.MISS, "k1", stored=False), id="a miss not stored"),
        pytest.param(computed(Outcome.ERROR, "k1", stored=True, model=None), id="an error"),
        pytest.param(computed(Outcome.MISS, "k2", stored=True), id="a miss of another key"),
    ],
)
def test_only_a_stored_miss_of_a_key_already_hit_starts_a_segment(event: CallEvent):
    tally = Tally()

    tally.fold([hit("k1", second=10), event, hit("k1", second=30)])

    (segment,) = tally.segments
    assert segment.computed == [event]
    assert segment.hits[(EXTRACT, "k1", FIRST_HOUR)].latencies.count == 2


def test_a_stored_miss_of_a_key_not_hit_yet_starts_no_segment():
    miss = computed(Outcome.MISS, "k1", stored=True)
    tally = Tally()

    tally.fold([miss, hit("k1", second=30)])

    (segment,) = tally.segments
    assert segment.computed == [miss]


def test_no_segment_is_started_once_the_rows_are_full():
    tally = Tally(max_rows=1)

    tally.fold(
        [hit("k1", second=10), computed(Outcome.MISS, "k1", stored=True), hit("k1", second=30)]
    )

    (segment,) = tally.segments
    assert segment.computed == []
    assert (tally.rows, tally.dropped) == (1, 1)
    assert segment.hits[(EXTRACT, "k1", FIRST_HOUR)].latencies.count == 2


# --- The oldest record and the record count ---


def test_a_new_tally_has_no_oldest_record_and_an_empty_fold_sets_none():
    tally = Tally()
    assert tally.oldest is None

    tally.fold([])

    assert tally.oldest is None
    assert len(tally) == 0


def test_the_oldest_is_the_start_of_the_first_hit_folded_and_later_folds_do_not_move_it():
    tally = Tally()

    tally.fold([hit(second=30, latency=0.004), hit(second=10)])
    tally.fold([hit(second=5), computed(second=1)])

    assert tally.oldest == started_at(30)


def test_the_oldest_is_the_start_of_a_computed_call_folded_first():
    tally = Tally()

    tally.fold([computed(second=20, latency=3.0), hit(second=10)])

    assert tally.oldest == started_at(20)


def test_len_counts_every_record_folded_over_several_folds():
    tally = Tally(max_rows=1)

    tally.fold([hit(second=1), hit(second=2), computed(second=3)])
    tally.fold([computed(second=4), hit(second=5)])

    assert len(tally) == 5


# --- Merging a tally the database did not take ---


def test_counted_only_calls_of_a_later_tally_add_up_in_the_same_slot():
    earlier = counted_only_tally(
        computed(latency=0.0005, second=10, usage=usage(10)),
        computed(latency=40.0, second=20, usage=usage(20)),
    )
    later = counted_only_tally(
        computed(latency=0.0007, second=30, usage=usage(300)),
        computed(latency=0.05, second=25, usage=usage(4000)),
    )

    earlier.absorb(later)

    (counted,) = earlier.counted_only.values()
    assert counted.latencies.count == 4
    assert counted.latencies.total == pytest.approx(0.0005 + 40.0 + 0.0007 + 0.05)
    assert counted.latencies.longest == 40.0
    assert counted.latencies.slots == distribution(under_1ms=2, under_100ms=1, over=1)
    assert counted.last == started_at(30)
    assert tokens(counted) == (4330, 4334, 4338, 4342, 4346)


def test_merging_keeps_the_longest_and_the_latest_call_whichever_tally_holds_them():
    earlier = counted_only_tally(computed(latency=0.3, second=50))
    later = counted_only_tally(computed(latency=9.0, second=5))

    earlier.absorb(later)

    (counted,) = earlier.counted_only.values()
    assert (counted.latencies.longest, counted.last) == (9.0, started_at(50))


def test_counted_only_slots_only_in_the_later_tally_are_added_as_they_are():
    earlier = counted_only_tally(computed(model="gpt-4o-mini", second=10))
    later = counted_only_tally(
        computed(Outcome.ERROR, model=None, second=40, latency=0.004, usage=usage(5)),
        computed(Outcome.ERROR, model=None, second=30, latency=12.0, usage=usage(50)),
    )

    earlier.absorb(later)

    assert len(earlier.counted_only) == 2
    added = earlier.counted_only[(EXTRACT, FIRST_HOUR, "", "error")]
    assert (added.info, added.hour, added.model, added.outcome) == (
        EXTRACT,
        FIRST_HOUR,
        "",
        "error",
    )
    assert added.latencies.count == 2
    assert added.latencies.total == pytest.approx(12.004)
    assert added.latencies.longest == 12.0
    assert added.latencies.slots == distribution(under_10ms=1, under_30000ms=1)
    assert added.last == started_at(40)
    assert tokens(added) == (55, 57, 59, 61, 63)
    kept = earlier.counted_only[(EXTRACT, FIRST_HOUR, "gpt-4o-mini", "miss")]
    assert (kept.latencies.count, kept.last) == (1, started_at(10))


def test_merging_adds_up_records_rows_and_dropped_rows():
    earlier = Tally(max_rows=2)
    earlier.fold([hit(second=1), computed(second=2), computed(second=3), computed(second=4)])
    later = Tally(max_rows=1)
    later.fold([computed(second=5), computed(second=6), hit(second=7), hit(second=8)])
    assert (earlier.records, earlier.rows, earlier.dropped) == (4, 2, 2)
    assert (later.records, later.rows, later.dropped) == (4, 1, 1)

    earlier.absorb(later)

    assert (len(earlier), earlier.records, earlier.rows, earlier.dropped) == (8, 8, 3, 3)


def test_merging_keeps_the_earlier_tallys_oldest_record():
    earlier, later = Tally(), Tally()
    earlier.fold([hit(second=30)])
    later.fold([hit(second=10)])

    earlier.absorb(later)

    assert earlier.oldest == started_at(30)


def test_a_tally_with_no_record_takes_the_oldest_of_the_one_it_absorbs():
    earlier, later = Tally(), Tally()
    later.fold([hit(second=10)])

    earlier.absorb(later)

    assert earlier.oldest == started_at(10)


def test_the_later_tallys_segments_come_after_and_empty_ones_are_skipped():
    earlier = Tally()
    earlier.fold([hit("k1", second=1)])
    later = Tally()
    miss = computed(Outcome.MISS, "k2", stored=True, second=3)
    later.fold([hit("k2", second=2), miss])
    hits_only, computed_only = later.segments
    assert (bool(hits_only.hits), hits_only.computed) == (True, [])
    assert (computed_only.hits, computed_only.computed) == ({}, [miss])
    mine = earlier.segments[0]

    earlier.absorb(later)
    earlier.absorb(Tally())  # nothing folded: one empty segment
    earlier.absorb(counted_only_tally(computed(second=4)))  # its one segment is empty

    assert len(earlier.segments) == 3
    assert all(
        segment is expected
        for segment, expected in zip(
            earlier.segments, (mine, hits_only, computed_only), strict=True
        )
    )


def test_folding_goes_on_in_the_last_segment_after_a_merge():
    earlier, later = Tally(), Tally()
    earlier.fold([hit("k1", second=1)])
    later.fold([hit("k2", second=2)])
    earlier.absorb(later)

    earlier.fold([hit("k2", second=3)])

    assert earlier.segments[-1] is later.segments[0]
    assert earlier.segments[-1].hits[(EXTRACT, "k2", FIRST_HOUR)].latencies.count == 2


# --- Each function's last call ---


SOURCES = ("a second key", "another hour", "a computed call", "a counted-only call")


def records_with_latest(latest: str) -> tuple[list[Any], float]:
    """Records of EXTRACT from four sources, the one named holding the latest call; and it.

    All but one are in the hour after the first; the hits of "another hour" are in the
    hour after that when they are the latest, in the first hour otherwise.
    """

    def second(source: str, other: float) -> float:
        return 50 if source == latest else other

    later_hour = 2 if latest == "another hour" else 0
    records = [
        computed(hour=1, second=second("a computed call", 15)),  # the one row (max_rows=1)
        hit("k1", hour=1, second=20),
        hit("k1", hour=1, second=5),
        hit("k2", hour=1, second=second("a second key", 25)),
        hit("k1", hour=later_hour, second=10),
        computed(hour=1, second=second("a counted-only call", 12)),
        computed(hour=1, second=8),
    ]
    return records, started_at(10, hour=2) if later_hour else started_at(50, hour=1)


@pytest.mark.parametrize("latest", SOURCES)
def test_a_functions_last_call_is_the_latest_over_its_keys_hours_and_calls(latest: str):
    records, last = records_with_latest(latest)
    tally = Tally(max_rows=1)
    tally.fold(records)
    assert len(tally.counted_only) == 1  # the later computed calls are counted only

    assert tally.infos() == {EXTRACT: last}


@pytest.mark.parametrize("latest", SOURCES)
def test_the_latest_call_is_found_across_merged_tallies(latest: str):
    records, last = records_with_latest(latest)
    earlier, later = Tally(max_rows=1), Tally(max_rows=0)
    earlier.fold(records[:3])
    later.fold(records[3:])

    earlier.absorb(later)

    assert earlier.infos() == {EXTRACT: last}


def test_each_function_keeps_its_own_last_call():
    translate = function("translate")  # its only call is counted, not itemised
    tally = Tally(max_rows=1)
    tally.fold(
        [
            computed(second=40, info=SUMMARISE),
            hit(second=45),
            computed(second=30),
            hit(second=20, info=SUMMARISE),
            computed(Outcome.ERROR, model=None, second=35, info=translate),
        ]
    )

    assert tally.infos() == {
        EXTRACT: started_at(45),
        SUMMARISE: started_at(40),
        translate: started_at(35),
    }
