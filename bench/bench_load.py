"""Benchmark: the path of an event from a file into Kafka, on the embedded broker.

Measures, on one generated dataset and in one run (so the numbers compare as ratios):

- ``validate``: ``records.parse`` on the canonical JSON of every event (what a worker pays
  per message before learning anything);
- ``read``: ``open_dataset`` (read, validate and time-sort the jsonl files);
- ``load``: ``publish_dataset`` with kafka-python (what ``coldstream load`` does);
- ``aiokafka``: the same messages sent by a bare aiokafka producer, as a ceiling for the client.

Run: ``python -m bench.bench_load --events 200000`` (prints a table, writes JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import show
from core.records import to_json
from core.settings import Settings
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics
from streams.validation import parse


async def _aiokafka_send(settings: Settings, messages: list[tuple[str, bytes, bytes, int]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **settings.aiokafka_config(), linger_ms=20, max_batch_size=256 * 1024, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, timestamp_ms=ts)
            for topic, key, value, ts in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def run(events: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "events": events,
        "machine": platform.processor() or platform.machine(),
    }
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        data = Path(tmp)
        config = SyntheticConfig(
            users=max(100, events // 40), items=max(50, events // 70), events=events
        )
        write_jsonl(generate(config), data)

        t = time.perf_counter()
        dataset = open_dataset(data)
        results["read_events_per_s"] = len(dataset) / (time.perf_counter() - t)

        payloads = [(r.kind, to_json(r)) for r in dataset.records()]
        t = time.perf_counter()
        for kind, raw in payloads:
            parse(kind, raw)
        results["validate_events_per_s"] = len(payloads) / (time.perf_counter() - t)

        settings = Settings.load(broker=broker.bootstrap, topic_prefix="bench")
        ensure_topics(settings)
        report = publish_dataset(dataset, settings)
        results["load_events_per_s"] = report.events_per_s

        raw_settings = Settings.load(broker=broker.bootstrap, topic_prefix="bench-raw")
        ensure_topics(raw_settings)
        topics = raw_settings.topics
        messages = [
            (topics.for_kind(r.kind), r.key.encode(), to_json(r), r.ts) for r in dataset.records()
        ]
        t = time.perf_counter()
        asyncio.run(_aiokafka_send(raw_settings, messages))
        results["aiokafka_events_per_s"] = len(messages) / (time.perf_counter() - t)
        results["load_vs_aiokafka"] = (
            results["load_events_per_s"] / results["aiokafka_events_per_s"]
        )
        results["dataset_events"] = len(dataset)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    show(run(args.events), args.json)


if __name__ == "__main__":
    main()
