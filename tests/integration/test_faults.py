"""Faults an operator meets, on the real embedded broker: a broker that comes back empty."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from coldstream.settings import Settings
from exporters.metrics import WorkerMetrics
from models.teacher import load_teacher
from streams.app import WorkerApp, run_worker
from streams.broker import EmbeddedBroker
from streams.topics import ensure_topics
from streams.worker import WorkerCore

pytestmark = pytest.mark.integration


def _publish(settings: Settings, tag: str, items: int, interactions: int, ts: float) -> None:
    producer = KafkaProducer(**settings.kafka_python_config())
    for i in range(items):
        item = {"item_id": f"{tag}{i}", "title": f"item {tag}{i}", "ts": ts}
        producer.send(settings.topics.items, orjson.dumps(item))
    for j in range(interactions):
        event = {"user_id": f"u{j % 17}", "item_id": f"{tag}{j % items}", "ts": ts + 1000 + j}
        producer.send(settings.topics.interactions, orjson.dumps(event))
    producer.flush()
    producer.close()


def _run(settings: Settings, ckpt: Path, until: int) -> tuple[WorkerCore, CollectorRegistry]:
    registry = CollectorRegistry()
    core = WorkerCore(
        settings,
        role="student",
        teacher=load_teacher("hashing"),
        metrics=WorkerMetrics.create(registry),
    )
    core.restore(ckpt)
    worker = WorkerApp(settings, core, checkpoint_dir=ckpt, checkpoint_s=1.0)
    run = run_worker(worker, until=lambda w: w.core.model_events >= until)
    asyncio.run(asyncio.wait_for(run, 120))
    return core, registry


def test_a_broker_that_comes_back_empty_is_read_again_from_its_start(tmp_path: Path) -> None:
    """The worker's checkpoint says 300 interactions were applied; the broker restarts with
    empty topics (in memory), and 120 new interactions arrive. Before: the worker skipped
    every record below its old offsets, silently, and committed those offsets into the new
    broker. Now: the partition is found to end before the applied offset, the reset is
    logged and counted, and every new event is applied."""
    ckpt = tmp_path / "ckpt"
    with EmbeddedBroker() as first:
        settings = Settings.load(broker=first.bootstrap, topic_prefix="faults", partitions=1)
        ensure_topics(settings)
        _publish(settings, "a", items=10, interactions=300, ts=1.7e12)
        core, _ = _run(settings, ckpt, until=300)
        assert core.model_events == 300
    with EmbeddedBroker() as second:  # same topic names, none of the records
        settings = Settings.load(broker=second.bootstrap, topic_prefix="faults", partitions=1)
        ensure_topics(settings)
        _publish(settings, "b", items=6, interactions=120, ts=1.71e12)
        core, registry = _run(settings, ckpt, until=420)
        assert core.model_events == 420  # every new interaction, exactly once
        assert core.offsets[(settings.topics.interactions, 0)] == 120
        assert core.offsets[(settings.topics.items, 0)] == 6
        assert {f"b{i}" for i in range(6)} <= set(core.catalog.ids)
        resets = {
            topic: registry.get_sample_value("coldstream_offset_resets_total", {"topic": topic})
            for topic in (settings.topics.interactions, settings.topics.items)
        }
        assert resets == {settings.topics.interactions: 1.0, settings.topics.items: 1.0}
