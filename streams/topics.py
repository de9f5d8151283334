"""Topic administration and reading whole topics, with kafka-python.

``ensure_topics`` creates the coldstream topics that are missing (and leaves existing ones, whose
partition counts may be the cluster owner's choice, alone). ``read_topic`` reads a topic from a
given offset to its current end by assigning partitions directly (no consumer group, so it never
disturbs a live group). It decides "the end" by reading until the broker has nothing more for
``idle_s`` seconds, instead of trusting ``end_offsets``, which some Kafka-compatible brokers
(the embedded Tansu among them) answer wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from coldstream.settings import Settings
from streams.exceptions import BrokerError

__all__ = ["ensure_topics", "read_topic", "unreachable"]


def unreachable(settings: Settings, exc: BaseException) -> BrokerError:
    """The error to raise when no broker answers, with what to do about it."""
    return BrokerError(
        f"cannot reach a Kafka broker at {settings.broker} ({type(exc).__name__}): start one "
        "with `coldstream broker`, or point --broker / COLDSTREAM_BROKER at your cluster"
    )


def ensure_topics(settings: Settings, short_names: Iterable[str] | None = None) -> dict[str, str]:
    """Create the missing coldstream topics; returns ``{topic: "created" | "exists"}``."""
    wanted = settings.topics.all()
    names = list(short_names) if short_names is not None else list(wanted)
    try:
        admin = KafkaAdminClient(**settings.kafka_python_config(), request_timeout_ms=30_000)
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    result: dict[str, str] = {}
    try:
        for short in names:
            topic = wanted[short]
            new = NewTopic(topic, settings.partitions_for(short), settings.replication_factor)
            try:
                admin.create_topics([new])
                result[topic] = "created"
            except TopicAlreadyExistsError:
                result[topic] = "exists"
    finally:
        admin.close()
    return result


def read_topic(
    settings: Settings,
    topic: str,
    *,
    start: int | None = None,
    idle_s: float = 2.0,
    max_records: int | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> Iterator[ConsumerRecord]:
    """Yield the records of every partition of ``topic`` from ``start`` (default: earliest)."""
    try:
        consumer = KafkaConsumer(
            **settings.kafka_python_config(),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            **(consumer_config or {}),
        )
    except (KafkaError, OSError) as exc:
        raise unreachable(settings, exc) from None
    try:
        parts = _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        for tp in tps:
            if start is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        seen = 0
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=200, max_records=10_000)
            if not batch:
                continue
            last = time.monotonic()
            for tp in sorted(batch, key=lambda t: t.partition):
                for rec in batch[tp]:
                    yield rec
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str, wait_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise BrokerError(
                f"topic {topic!r} does not exist on {consumer.config['bootstrap_servers']}"
            )
        time.sleep(0.2)
