"""Publish a dataset into the coldstream topics, keeping event time (``coldstream load``).

Each record goes to the topic of its kind, keyed by user id (interactions, users) or item id
(items), with the Kafka timestamp set to the event time and the canonical JSON of
``records.to_json`` as value. Records are sent in event-time order by one producer with one
request in flight per connection, so the order per key (per partition) is the file's order.
Invalid rows go to the dead-letter topic with their file and line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError

from core.records import dead_letter, to_json
from core.settings import Settings
from streams.datasets import Dataset
from streams.exceptions import StreamsError
from streams.topics import check_reachable, unreachable

__all__ = ["LoadError", "LoadReport", "publish_dataset"]


class LoadError(StreamsError):
    """Some records could not be published."""


@dataclass
class LoadReport:
    published: dict[str, int] = field(default_factory=dict)  # topic -> records
    dead_lettered: int = 0
    failed: int = 0
    seconds: float = 0.0
    first_error: str | None = None

    @property
    def events(self) -> int:
        return sum(self.published.values())

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def publish_dataset(
    dataset: Dataset,
    settings: Settings,
    *,
    progress: Callable[[int], None] | None = None,
    linger_ms: int = 20,
) -> LoadReport:
    """Send every record and every bad row of ``dataset``; returns counts and rate."""
    topics = settings.topics
    report = LoadReport()
    check_reachable(settings)
    try:
        producer = KafkaProducer(
            **settings.kafka_python_config(),
            acks="all",
            linger_ms=linger_ms,
            batch_size=256 * 1024,
            max_in_flight_requests_per_connection=1,  # keeps per-partition order on retries
            retries=5,
        )
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None

    def failed(exc: BaseException) -> None:
        report.failed += 1
        if report.first_error is None:
            report.first_error = f"{type(exc).__name__}: {exc}"

    start = time.perf_counter()
    try:
        for row in dataset.bad:
            msg = dead_letter(
                row.invalid,
                topic=topics.for_kind(row.kind),
                partition=None,
                offset=None,
                raw=row.raw,
                source=f"{row.source}:{row.line}",
            )
            producer.send(topics.dlq, msg).add_errback(failed)
            report.dead_lettered += 1
        pending = 0
        for rec in dataset.records():
            topic = topics.for_kind(rec.kind)
            fut = producer.send(topic, to_json(rec), key=rec.key.encode(), timestamp_ms=rec.ts)
            fut.add_errback(failed)
            report.published[topic] = report.published.get(topic, 0) + 1
            pending += 1
            if progress is not None and pending >= 1000:
                progress(pending)
                pending = 0
        producer.flush()
        if progress is not None and pending:
            progress(pending)
    finally:
        producer.close(timeout=10)
        report.seconds = time.perf_counter() - start
    return report
