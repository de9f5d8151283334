"""The batch transport inside a real Faust app, on the embedded broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import faust
import pytest
from faust.types import TP
from kafka import KafkaProducer

from core.settings import Settings
from streams.topics import ensure_topics
from streams.transport import BatchApp, BatchConsumer, RecordBatch

pytestmark = pytest.mark.integration


def test_batches_carry_every_record_once_in_order_and_seek_redelivers(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(partitions=2)
    ensure_topics(settings, ["interactions"])
    topic = settings.topics.interactions
    producer = KafkaProducer(**settings.kafka_python_config())
    for i in range(3000):
        producer.send(topic, b"%d" % i, partition=i % 2)
    producer.flush()
    producer.close()

    async def main() -> dict[int, list[int]]:
        app = BatchApp(
            f"{settings.topic_prefix}-transport",
            broker=f"kafka://{settings.broker}",
            value_serializer="raw",
            topic_disable_leader=True,
            web_enabled=False,
            broker_session_timeout=10.0,
            consumer_auto_offset_reset="earliest",
            broker_max_poll_records=400,
        )
        offsets: dict[int, list[int]] = defaultdict(list)
        sizes: list[int] = []
        first_pass, second_pass = asyncio.Event(), asyncio.Event()

        @app.agent(app.topic(topic, value_type=bytes, acks=False))
        async def agent(stream: faust.StreamT[RecordBatch]) -> None:
            async for batch in stream:
                assert isinstance(batch, RecordBatch) and batch.topic == topic
                assert batch.highwater == 1500
                sizes.append(len(batch))
                offsets[batch.partition].extend(r.offset for r in batch.records)
                total = sum(len(v) for v in offsets.values())
                if total >= 3000:
                    first_pass.set()
                if total >= 3000 + 500:
                    second_pass.set()

        await app.start()
        try:
            await asyncio.wait_for(first_pass.wait(), 60)
            assert max(sizes) <= 400 and len(sizes) >= 8  # batches, not single messages
            consumer = app.consumer
            assert isinstance(consumer, BatchConsumer)
            await consumer.seek(TP(topic, 0), 1000)  # a seek to n delivers n next
            await asyncio.wait_for(second_pass.wait(), 60)
        finally:
            await app.stop()
        return offsets

    offsets = asyncio.run(main())
    assert offsets[1] == list(range(1500))
    assert offsets[0] == list(range(1500)) + list(range(1000, 1500))
