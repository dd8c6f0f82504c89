"""Folds call records into exact counts and a bounded set of rows to itemise.

A process serves up to ~10^5 hits a second; a row per hit is more than a
database takes for long (and more than anyone reads). So hits are folded here,
in memory, into one aggregate per (function, key, hour): how many, their
latencies, the last one. Those become the entry's hit count and the rollups,
exactly. Of the hits, at most EXTRACTOR_ITEMISED_HITS_PER_SECOND a second (per process) keep
their own row in the call log; the rest are counted only. Every computed call
(miss, error, bypass, replay) keeps its row, up to `max_rows` waiting: past
that (a database away for long) its row is dropped, counted, and its counts
still reach the rollups.

Folding costs about a microsecond a hit, so one thread keeps up with every
caller; what the database is doing meanwhile does not matter: a tally that
could not be written is kept and written with the next one.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from extractor.caching.envelope import Usage
from extractor.caching.events import (
    _WALL_OFFSET,
    CallEvent,
    CoalescedHit,
    FunctionInfo,
    Outcome,
    Record,
)
from extractor.models import LATENCY_BOUNDS_MS

HOUR = 3600
# bisect over the bounds in seconds: a hit's latency arrives in seconds.
_BOUNDS_S = tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS)
EVERY_HIT = -1  # EXTRACTOR_ITEMISED_HITS_PER_SECOND meaning "itemise every hit"


@dataclass(slots=True)
class Latencies:
    """Count, sum, max and distribution of some calls' latencies (seconds)."""

    count: int = 0
    total: float = 0.0
    longest: float = 0.0
    slots: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS_S) + 1))

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds > self.longest:
            self.longest = seconds
        self.slots[bisect_left(_BOUNDS_S, seconds)] += 1

    def absorb(self, other: Latencies) -> None:
        self.count += other.count
        self.total += other.total
        self.longest = max(self.longest, other.longest)
        self.slots = [mine + theirs for mine, theirs in zip(self.slots, other.slots, strict=True)]


@dataclass(slots=True)
class KeyHits:
    """The hits of one key in one hour."""

    info: FunctionInfo
    key: str
    hour: int  # unix hour: int(unix time // 3600)
    latencies: Latencies = field(default_factory=Latencies)
    last: float = 0.0  # perf_counter of the latest hit
    itemised: list[tuple[float, float]] = field(default_factory=list)  # (started, latency)
    # Of the hits, those that waited for another caller's computation (single-flight).
    coalesced: int = 0


@dataclass(slots=True)
class CountedOnly:
    """Computed calls whose rows were dropped: their counts, for the rollups."""

    info: FunctionInfo
    hour: int
    model: str
    outcome: str
    latencies: Latencies = field(default_factory=Latencies)
    last: float = 0.0  # perf_counter of the latest call
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def add_usage(self, usage: Usage | CountedOnly) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_prompt_tokens += usage.cached_prompt_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.cache_write_1h_tokens += usage.cache_write_1h_tokens


@dataclass(slots=True)
class Segment:
    """Records to write in order: its computed calls, then its hits.

    Within a segment every hit of a key came after the key's computed calls
    (a hit served by the value a miss stored is credited to the miss's row). A
    hit recorded before a miss that stores a new value under its key was served
    by the old value: the miss starts a new segment, so the hit is credited to
    the old row before the miss replaces it.
    """

    hits: dict[tuple[FunctionInfo, str, int], KeyHits] = field(default_factory=dict)
    hit_keys: set[str] = field(default_factory=set)
    computed: list[CallEvent] = field(default_factory=list)


@dataclass(slots=True)
class ItemiseBudget:
    """Hits itemised in the current second, shared by a process's successive tallies."""

    per_second: int
    second: int = -1
    used: int = 0


class Tally:
    def __init__(self, *, budget: ItemiseBudget | None = None, max_rows: int = 100_000) -> None:
        # None itemises every hit (up to max_rows).
        self.budget = budget
        self.max_rows = max_rows
        self.segments: list[Segment] = [Segment()]
        self.counted_only: dict[tuple[FunctionInfo, int, str, str], CountedOnly] = {}
        self.records = 0  # every record folded in
        self.rows = 0  # itemised rows waiting: computed calls and sampled hits
        self.dropped = 0  # computed calls whose rows were dropped (max_rows)
        self.oldest: float | None = None  # perf_counter start of the first record folded

    def __len__(self) -> int:
        return self.records

    def fold(self, records: list[Record]) -> None:
        if self.oldest is None and records:
            first = records[0]
            self.oldest = first[2] if isinstance(first, tuple) else first.started
        segment = self.segments[-1]
        hits, hit_keys = segment.hits, segment.hit_keys
        budget = self.budget
        coalesced_hit = CoalescedHit  # a local: this loop runs once per hit
        for record in records:
            coalesced = False
            if type(record) is not tuple:
                if type(record) is coalesced_hit:
                    coalesced = True
                else:
                    event: CallEvent = record  # type: ignore[assignment]
                    # Only a stored value (kept as a row) changes which entry a hit of
                    # the key is credited to: nothing else needs the order kept.
                    if (
                        event.key in hit_keys
                        and event.stored
                        and event.outcome == Outcome.MISS
                        and self.rows < self.max_rows
                    ):
                        segment = Segment()
                        self.segments.append(segment)
                        hits, hit_keys = segment.hits, segment.hit_keys
                    self._fold_computed(event, segment)
                    continue
            info, key, started, latency = record
            wall = _WALL_OFFSET + started
            slot = (info, key, int(wall // HOUR))
            key_hits = hits.get(slot)
            if key_hits is None:
                key_hits = hits[slot] = KeyHits(info, key, slot[2])
                hit_keys.add(key)
            # Latencies.add, inlined: this loop runs once per hit.
            latencies = key_hits.latencies
            latencies.count += 1
            latencies.total += latency
            if latency > latencies.longest:
                latencies.longest = latency
            latencies.slots[bisect_left(_BOUNDS_S, latency)] += 1
            if started > key_hits.last:
                key_hits.last = started
            if coalesced:
                key_hits.coalesced += 1
            if self.rows >= self.max_rows:
                continue
            if budget is not None:
                # Forward only: threads append a little out of order, and a hit of
                # the second before must not open that second's budget again.
                second = int(wall)
                if second > budget.second:
                    budget.second, budget.used = second, 0
                if budget.used >= budget.per_second:
                    continue
                budget.used += 1
            key_hits.itemised.append((started, latency))
            self.rows += 1
        self.records += len(records)

    def _fold_computed(self, event: CallEvent, segment: Segment) -> None:
        if self.rows < self.max_rows:
            segment.computed.append(event)
            self.rows += 1
            return
        self.dropped += 1
        envelope = event.envelope
        model = envelope.llm_model if envelope is not None else ""
        hour = int((_WALL_OFFSET + event.started) // HOUR)
        slot = (event.info, hour, model, str(event.outcome))
        counted = self.counted_only.get(slot)
        if counted is None:
            counted = self.counted_only[slot] = CountedOnly(
                event.info, hour, model, str(event.outcome)
            )
        counted.latencies.add(event.latency)
        counted.last = max(counted.last, event.started)
        counted.add_usage(event.tokens)

    def absorb(self, later: Tally) -> None:
        """Add a tally folded after this one (this one could not be written)."""
        # Later records go after these, in segments of their own; folding goes on
        # in the last one (fold starts a new segment where order requires it).
        self.segments.extend(seg for seg in later.segments if seg.hits or seg.computed)
        for slot, counted in later.counted_only.items():
            mine = self.counted_only.setdefault(
                slot, CountedOnly(counted.info, counted.hour, counted.model, counted.outcome)
            )
            mine.latencies.absorb(counted.latencies)
            mine.last = max(mine.last, counted.last)
            mine.add_usage(counted)
        if self.oldest is None:
            self.oldest = later.oldest
        self.records += later.records
        self.rows += later.rows
        self.dropped += later.dropped

    def infos(self) -> dict[FunctionInfo, float]:
        """Each function folded in, with when it was last called (perf_counter)."""
        seen: dict[FunctionInfo, float] = {}
        for segment in self.segments:
            for key_hits in segment.hits.values():
                info = key_hits.info
                seen[info] = max(key_hits.last, seen.get(info, key_hits.last))
            for event in segment.computed:
                seen[event.info] = max(event.started, seen.get(event.info, event.started))
        for counted in self.counted_only.values():
            seen[counted.info] = max(counted.last, seen.get(counted.info, counted.last))
        return seen
