"""Reading a range of the input topics' history, for ``coldstream replay``.

The reader is read-only and invisible to the live worker: its own kafka-python consumer with
``group_id=None``, partitions taken with ``assign()``, auto-commit off. So it never joins a
consumer group and never commits an offset, and it writes nothing to the cluster (invalid
messages are counted, not dead-lettered).

**The range** (parsed in :mod:`streams.ranges`). ``--from`` is ``earliest`` (each
partition's first offset), an offset (every
partition from that offset on; a partition that ends before it gives nothing) or an ISO-8601
time (events at or after it). ``--until`` is ``end`` or an ISO-8601 time (events before it).
Times are event times: a message's validated ``ts`` (its Kafka timestamp when it has none;
``coldstream load`` sets the Kafka timestamp to the event time anyway). A time range is
half-open, ``from <= ts < until``, so consecutive windows neither overlap nor leave gaps.

**Finding the end by reading.** The end of a partition is its high-water mark as the first
fetch response for it reports it (``KafkaConsumer.highwater``), so replaying a live topic stops
at the end it saw when it started instead of chasing new events. ``end_offsets`` (a ListOffsets
request) is never asked: the embedded broker answers it wrongly, while the high-water mark in
fetch responses is right there as on Apache Kafka (0 for an empty partition). Should a
partition stop answering before its end, reading stops after ``idle_s`` seconds without
progress and the partition is reported in :attr:`History.incomplete`.

**Time bounds are decided by the records as they are read**, never by a broker's answer.
``--until TIME`` does not shorten the read: a partition is read to its end and records at or
after the time are dropped, since nothing guarantees a partition's event times are in order.
``--from TIME`` is where a real cluster saves work: ``offsets_for_times`` (Kafka's time index)
names each partition's first offset with a timestamp at or after the time, and the partition
is read from there instead of from its beginning. The answer is checked by reading before it
is used: the partition is read from one record before the answer, and the answer stands only
if that record's event time is before ``from`` and the record at the answer (when there is
one) is at or after it; otherwise that partition is read again from its beginning. Either
way every record read is still filtered by its own time. On Apache Kafka the answer is exact
(no earlier offset has a later timestamp, by the definition of the time index); the embedded
broker answers offset 0 for every time, which is harmless (the beginning). What the check
cannot see is a broker that answers too late in a partition whose times are out of order;
``use_time_index=False`` (``coldstream replay --no-time-index``) reads every partition from
its beginning and trusts nothing but the records.

Records come back in the canonical event order of :mod:`streams.order`, the order
``coldstream evaluate`` uses for a file, so a file and the topics it was loaded into give the
same metrics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError

from core.records import Invalid, Record
from core.settings import Settings
from streams.exceptions import BrokerError, StreamsError
from streams.order import in_event_order
from streams.ranges import Start, Until, check_range
from streams.topics import check_reachable, unreachable
from streams.validation import parse

__all__ = ["History", "HistoryError", "PartitionRange", "read_history"]

_EARLIEST, _END = Start(), Until()  # frozen: shared defaults are safe

#: how long to wait for a broker to answer at all (kafka-python's default is 30 s)
BOOTSTRAP_TIMEOUT_MS = 10_000


class HistoryError(StreamsError):
    """The history cannot be read as asked (missing topic, records deleted while reading)."""


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """What was read of one partition: offsets ``[first, end)`` and how ``first`` was found."""

    topic: str
    partition: int
    first: int
    end: int | None  # the high-water mark reached; None when the partition never answered
    how: str  # "earliest", "offset", "time index", "time index rejected", ...


@dataclass
class History:
    """The valid records of a range in event order, and what was read to find them."""

    records: list[Record]
    read: dict[str, int]  # topic -> messages read
    invalid: dict[str, int]  # reason code -> messages skipped as invalid
    outside: int  # valid messages read whose event time is outside the range
    partitions: list[PartitionRange]
    incomplete: list[str]  # "topic[partition]" that went idle before their end
    missing_topics: list[str]  # optional topics (items, users) that do not exist
    seconds: float

    def counts(self) -> dict[str, int]:
        """Records in the range by kind."""
        out = {"interaction": 0, "item": 0, "user": 0}
        for r in self.records:
            out[r.kind] += 1
        return out


@dataclass
class _Part:
    """Reading state of one partition."""

    tp: TopicPartition
    kind: str
    begin: int
    first: int = 0
    how: str = "earliest"
    end: int | None = None
    done: bool = False
    verify: int | None = None  # a time-index answer still to check by reading
    before_ok: bool = False  # the record before ``verify`` was read and is earlier
    records: list[Record] = field(default_factory=list)
    read: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    outside: int = 0

    def check(self, offset: int, ts: int, lo: int) -> bool:
        """While checking a time-index answer ``verify``: the record before it must be
        earlier than ``lo``, the record at it not earlier. False rejects the answer."""
        assert self.verify is not None
        if offset == self.verify - 1 and not self.before_ok:
            self.before_ok = ts < lo
            return self.before_ok
        ok = self.before_ok and offset == self.verify and ts >= lo
        self.verify = None
        return ok

    def reject(self, consumer: KafkaConsumer) -> None:
        """The time-index answer failed its check: read this partition from its beginning."""
        self.records.clear()
        self.invalid.clear()
        self.read = self.outside = 0
        self.first, self.verify, self.how = self.begin, None, "time index rejected: earliest"
        consumer.seek(self.tp, self.begin)


def read_history(
    settings: Settings,
    start: Start = _EARLIEST,
    until: Until = _END,
    *,
    use_time_index: bool = True,
    idle_s: float = 10.0,
    progress: Callable[[int], None] | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> History:
    """Read the interactions, items and users topics over ``[start, until)``.

    The interactions topic must exist; a missing items or users topic is reported in
    :attr:`History.missing_topics` and read as empty. ``progress(n)`` is called with the
    number of messages read as they come in.
    """
    check_range(start, until)
    t0 = time.perf_counter()
    config: dict[str, Any] = {
        **settings.kafka_python_config(),
        "group_id": None,  # no consumer group: nothing joined, nothing committed
        "enable_auto_commit": False,
        "auto_offset_reset": "none",  # an offset out of range is handled here, never guessed
        "fetch_max_wait_ms": 100,  # an empty partition answers (with its high-water mark) fast
        "max_poll_records": 10_000,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **(consumer_config or {}),
    }
    check_reachable(settings)
    try:
        consumer = KafkaConsumer(**config)
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    try:
        parts, missing = _assign(consumer, settings)
        _seek(consumer, parts, start, use_time_index)
        _read(consumer, parts, start, until, settings, idle_s, progress)
    except KafkaError as exc:
        raise BrokerError(
            f"reading from {settings.broker} failed ({type(exc).__name__}: {exc}); "
            "check the broker and run again"
        ) from None
    finally:
        consumer.close(autocommit=False)
    invalid: Counter[str] = Counter()
    read: dict[str, int] = {}
    for p in parts:
        invalid.update(p.invalid)
        read[p.tp.topic] = read.get(p.tp.topic, 0) + p.read
    return History(
        records=in_event_order(r for p in parts for r in p.records),
        read=read,
        invalid=dict(invalid),
        outside=sum(p.outside for p in parts),
        partitions=[
            PartitionRange(p.tp.topic, p.tp.partition, p.first, p.end, p.how) for p in parts
        ],
        incomplete=[f"{p.tp.topic}[{p.tp.partition}]" for p in parts if not p.done],
        missing_topics=missing,
        seconds=time.perf_counter() - t0,
    )


def _assign(consumer: KafkaConsumer, settings: Settings) -> tuple[list[_Part], list[str]]:
    topics = settings.topics
    wanted = {topics.interactions: "interaction", topics.items: "item", topics.users: "user"}
    existing = consumer.topics()
    if topics.interactions not in existing:
        raise HistoryError(
            f"topic {topics.interactions!r} does not exist on {settings.broker}: load events "
            "with `coldstream load`, or name your topics with --topic-prefix or "
            "COLDSTREAM_TOPIC_INTERACTIONS"
        )
    missing = [t for t in wanted if t not in existing]
    tps = [
        TopicPartition(topic, p)
        for topic in wanted
        if topic in existing
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(tps)
    begin = consumer.beginning_offsets(tps)
    return [_Part(tp, wanted[tp.topic], int(begin[tp])) for tp in tps], missing


def _seek(consumer: KafkaConsumer, parts: list[_Part], start: Start, use_time_index: bool) -> None:
    answers: dict[TopicPartition, Any] = {}
    how = "earliest"
    if start.time_ms is not None:
        how = "earliest (--no-time-index)"
        if use_time_index:
            try:
                answers = consumer.offsets_for_times({p.tp: start.time_ms for p in parts})
                how = "time index answered the beginning or nothing: earliest"
            except KafkaError:  # a broker without a time index: read from the beginning
                how = "no time index: earliest"
    for p in parts:
        p.first, p.how = p.begin, how
        ans = answers.get(p.tp)
        if start.offset is not None:
            # older records may have been deleted: the partition starts where it starts now
            p.first, p.how = max(start.offset, p.begin), "offset"
        elif ans is not None and ans.offset > p.begin:
            # read from one record before the answer, to check it (_Part.check)
            p.first, p.verify, p.how = ans.offset - 1, ans.offset, "time index"
        consumer.seek(p.tp, p.first)


def _read(
    consumer: KafkaConsumer,
    parts: list[_Part],
    start: Start,
    until: Until,
    settings: Settings,
    idle_s: float,
    progress: Callable[[int], None] | None,
) -> None:
    by_tp = {p.tp: p for p in parts}
    lo = start.time_ms if start.time_ms is not None else -(2**63)
    hi = until.time_ms if until.time_ms is not None else 2**63
    fields, limits = settings.fields, settings.limits
    last = time.monotonic()
    while True:
        _mark_done(consumer, parts)
        if all(p.done for p in parts) or time.monotonic() - last > idle_s:
            return
        try:
            batch = consumer.poll(timeout_ms=200)
        except OffsetOutOfRangeError as exc:
            _out_of_range(consumer, by_tp, exc)
            last = time.monotonic()
            continue
        n = 0
        for tp, msgs in batch.items():
            p = by_tp[tp]
            if p.end is None:  # set by the fetch response that brought these records
                hw = consumer.highwater(tp)
                p.end = None if hw is None else int(hw)
            for msg in msgs:
                if p.end is not None and msg.offset >= p.end:
                    break  # past the end this replay saw when it started
                rec = parse(
                    p.kind, msg.value, fields=fields, limits=limits, default_ts=msg.timestamp
                )
                ts = msg.timestamp if isinstance(rec, Invalid) else rec.ts
                if p.verify is not None and not p.check(msg.offset, ts, lo):
                    p.reject(consumer)
                    break
                p.read += 1
                n += 1
                if isinstance(rec, Invalid):
                    p.invalid[rec.code] += 1
                elif lo <= rec.ts < hi:
                    p.records.append(rec)
                else:
                    p.outside += 1
        if n:
            last = time.monotonic()
            if progress is not None:
                progress(n)


def _mark_done(consumer: KafkaConsumer, parts: list[_Part]) -> None:
    """A partition is done when its position reaches the end it reported first."""
    newly = []
    for p in parts:
        if p.done:
            continue
        if p.end is None:
            hw = consumer.highwater(p.tp)
            if hw is None:
                continue
            p.end = int(hw)
        if consumer.position(p.tp) < p.end:
            continue
        if p.verify is not None:
            if not p.before_ok:  # the answer lies past the end: nothing checked it
                p.reject(consumer)
                continue
            p.verify = None  # the answer was the end, and the record before it is earlier
        p.done = True
        newly.append(p.tp)
    if newly:
        consumer.pause(*newly)


def _out_of_range(
    consumer: KafkaConsumer, by_tp: dict[TopicPartition, _Part], exc: OffsetOutOfRangeError
) -> None:
    """A fetch position the broker does not hold: past the end (nothing to read there), or
    below the start because retention deleted records while we read them (an error)."""
    where = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    for tp, offset in where.items():
        p = by_tp.get(tp)
        if p is None:
            continue
        if offset < p.begin or p.read:
            raise HistoryError(
                f"{tp.topic}[{tp.partition}]: offset {offset} is no longer in the log "
                "(deleted by retention while replaying?); run the replay again"
            )
        if p.verify is not None:
            p.reject(consumer)  # the answer lies past the end
            continue
        p.end, p.done = offset, True
        consumer.pause(tp)
