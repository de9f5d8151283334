"""Benchmark: the student worker's end-to-end rate, against raw aiokafka and River, in one run.

On the embedded broker, one generated dataset is loaded once; then, on the same interactions:

- ``raw_aiokafka``: a bare aiokafka consumer reading the interactions topic and decoding every
  message with orjson (the ceiling for any Python consumer here);
- ``faust_plain``: a stock Faust agent, one event per message (``async for value in stream``),
  reading the same topic (on a prefix of it: it is slow);
- ``faust_batch``: a Faust agent on coldstream's batch transport (``streams/transport.py``),
  decoding every record of each batch with orjson, on the whole topic;
- ``worker``: ``coldstream worker --role student``'s code path: the batch transport, validation,
  the teacher for items, the student learning every interaction (consume, decode, validate,
  train), timed from its first batch to its last interaction;
- ``river``: River's ``BiasedMF`` learning the same interactions through ``learn_one``.

Run: ``python -m bench.bench_worker --events 200000`` (``--json FILE`` to keep the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry

from bench.common import show
from coldstream.settings import Settings
from coldstream.threads import limit_threads
from exporters.metrics import WorkerMetrics
from models.catalog import Catalog
from models.registry import build_models
from models.teacher import load_teacher
from streams.app import WorkerApp, run_worker
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.records import Interaction
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics
from streams.transport import BatchApp, RecordBatch
from streams.worker import WorkerCore


async def _raw_aiokafka(settings: Settings, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**settings.aiokafka_config(), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, t0 = 0, time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


async def _faust_agent(settings: Settings, topic: str, n: int, *, batches: bool) -> float:
    """Events/s of one Faust agent decoding every record: stock (one event per message) or on
    coldstream's batch transport (one event per partition fetch)."""
    app = (BatchApp if batches else faust.App)(
        f"bench-{'batch' if batches else 'plain'}",
        broker=f"kafka://{settings.broker}",
        value_serializer="raw",
        topic_disable_leader=True,
        web_enabled=False,
        store="memory://",
        broker_session_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5000,
    )
    done = asyncio.Event()
    state: dict[str, Any] = {"n": 0, "t0": 0.0, "t1": 0.0}

    def seen(values: list[bytes]) -> None:
        if state["n"] == 0:
            state["t0"] = time.perf_counter()
        for value in values:
            orjson.loads(value)
        state["n"] += len(values)
        if state["n"] >= n and not done.is_set():
            state["t1"] = time.perf_counter()
            done.set()

    source = app.topic(topic, value_type=bytes, acks=not batches)
    if batches:

        @app.agent(source)
        async def batch_agent(stream: faust.StreamT[RecordBatch]) -> None:
            async for batch in stream:
                seen([r.value for r in batch.records])

    else:

        @app.agent(source)
        async def plain_agent(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                seen([value])

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        await app.stop()
    return float(state["n"] / (state["t1"] - state["t0"]))


def _worker(settings: Settings, total: int, checkpoints: Path) -> float:
    core = WorkerCore(
        settings,
        role="student",
        teacher=load_teacher(None),
        metrics=WorkerMetrics.create(CollectorRegistry()),
        eval_every=10**9,
    )
    first: list[float] = []
    apply = core.apply

    def timed_apply(batch: Any) -> Any:
        if not first:
            first.append(time.perf_counter())
        return apply(batch)

    core.apply = timed_apply  # type: ignore[method-assign]
    end: list[float] = []

    def finished(w: WorkerApp) -> bool:
        if w.core.model_events >= total and not end:
            end.append(time.perf_counter())
        return bool(end)

    worker = WorkerApp(settings, core, checkpoint_dir=checkpoints, checkpoint_s=3600)
    with limit_threads(1):  # as `coldstream worker` runs it
        asyncio.run(run_worker(worker, until=finished))
    return total / (end[0] - first[0])


def _river(interactions: list[Interaction]) -> float:
    catalog = Catalog(8)
    model = build_models(["river"], catalog, threshold=None)["river"]
    for it in dict.fromkeys(i.item_id for i in interactions):
        model.observe_item(catalog.add(it, None))
    rows = [(i.user_id, catalog.index(i.item_id), i.value, i.ts) for i in interactions]
    t0 = time.perf_counter()
    for user, row, value, ts in rows:  # pure Python: threads do not matter
        model.learn_one(user, row, value, ts)
    model.flush()
    return len(rows) / (time.perf_counter() - t0)


def run(events: int, plain_events: int) -> dict[str, Any]:
    results: dict[str, Any] = {"events": events, "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        data = Path(tmp) / "data"
        write_jsonl(generate(SyntheticConfig(users=5000, items=3000, events=events, seed=1)), data)
        dataset = open_dataset(data)
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="bench", partitions=3)
        ensure_topics(settings)
        publish_dataset(dataset, settings)
        topic = settings.topics.interactions
        interactions = [r for r in dataset.records() if isinstance(r, Interaction)]
        total = len(interactions)

        results["raw_aiokafka_events_per_s"] = asyncio.run(_raw_aiokafka(settings, topic, total))
        results["faust_plain_events_per_s"] = asyncio.run(
            _faust_agent(settings, topic, min(plain_events, total), batches=False)
        )
        results["faust_batch_events_per_s"] = asyncio.run(
            _faust_agent(settings, topic, total, batches=True)
        )
        results["worker_events_per_s"] = _worker(settings, total, Path(tmp) / "ckpt")
        results["river_events_per_s"] = _river(interactions)
    w = results["worker_events_per_s"]
    results["worker_vs_river"] = w / results["river_events_per_s"]
    results["worker_vs_raw_aiokafka"] = w / results["raw_aiokafka_events_per_s"]
    results["worker_vs_faust_plain"] = w / results["faust_plain_events_per_s"]
    results["faust_batch_vs_faust_plain"] = (
        results["faust_batch_events_per_s"] / results["faust_plain_events_per_s"]
    )
    results["faust_batch_vs_raw_aiokafka"] = (
        results["faust_batch_events_per_s"] / results["raw_aiokafka_events_per_s"]
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description="student worker throughput vs raw aiokafka and River"
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--plain-events",
        type=int,
        default=30_000,
        help="messages the stock per-message Faust agent reads",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    show(run(args.events, args.plain_events), args.json)


if __name__ == "__main__":
    main()
