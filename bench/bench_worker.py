"""Benchmark: the student worker's end-to-end rate, against raw aiokafka and River, in one run.

On the embedded broker, one generated dataset is loaded once; then, on the same interactions:

- ``raw_aiokafka``: a bare aiokafka consumer reading the interactions topic and decoding every
  message with orjson (the ceiling for any Python consumer here);
- ``faust_plain``: a stock Faust agent, one event per message (``async for value in stream``),
  reading the same topic (on a prefix of it: it is slow);
- ``faust_batch``: a Faust agent on coldstream's batch transport (``streams/transport.py``),
  decoding every record of each batch with orjson, on the whole topic;
- ``worker``: ``coldstream worker --role student``'s code path on all three topics: the batch
  transport, validation, event-time ordering, the student learning every interaction (consume,
  decode, validate, train), timed from its first batch to its last interaction. The teacher's
  vectors for the item and user texts are computed before (``teacher`` below), so this row is
  the rate the throughput goal names;
- ``worker_eval_every_10``: the same, also ranking every 10th positive for the live metrics
  (the default ``coldstream worker``); ``worker_eval_every_1``: ranking every positive;
- ``worker_with_teacher``: the same with the teacher encoding every item and user text inline
  (what a backlog with one new item or profile per ~30 interactions costs);
- ``teacher``: texts/s of the teacher (all cores, as the worker runs it);
- ``student_in_memory``: the student's ``learn_one`` alone on the same interactions, no Kafka;
- ``river``: River's ``BiasedMF`` learning the same interactions through ``learn_one``.

It also counts the student's floating-point work per interaction (torch's FLOP counter on its
training steps, plus the numpy refresh of cached content rows) and measures this machine's
single-thread sgemm rate: their ratio, times the cores, is the most interactions/s this student
could learn here if its step ran at the machine's peak.

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
import numpy as np
import orjson
import torch
from prometheus_client import CollectorRegistry
from torch.utils.flop_counter import FlopCounterMode

from bench.common import show
from core.records import Interaction, Item, User
from core.settings import Settings
from core.threads import cores, limit_threads, torch_threads
from exporters.metrics import WorkerMetrics
from models.catalog import Catalog
from models.registry import build_models
from models.student import Student, StudentConfig
from models.teacher import TextEncoder, load_teacher, text_of
from streams.app import WorkerApp, run_worker
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.load import publish_dataset
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


class _Precomputed:
    """A teacher whose vectors for the given texts were computed up front (timed)."""

    def __init__(self, teacher: TextEncoder, texts: list[str]) -> None:
        self.name, self.dim = teacher.name, teacher.dim
        unique = list(dict.fromkeys(texts))
        t0 = time.perf_counter()
        with torch_threads(0):
            vectors = teacher.encode(unique)
        self.seconds = time.perf_counter() - t0
        self.texts = len(unique)
        self._vectors = dict(zip(unique, vectors, strict=True))

    def encode(self, texts: Any) -> Any:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])


def _worker(
    settings: Settings,
    teacher: TextEncoder,
    total: int,
    checkpoints: Path,
    eval_every: int = 10**9,
) -> float:
    core = WorkerCore(
        settings,
        role="student",
        teacher=teacher,
        metrics=WorkerMetrics.create(CollectorRegistry()),
        eval_every=eval_every,
        encode_async=True,  # as `coldstream worker` runs it
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


def _student(
    dataset: Any, teacher: _Precomputed, interactions: list[Interaction]
) -> dict[str, float]:
    """The student's learn_one alone (items and profiles in event order, as the worker applies
    them, untimed), and its floating-point work per interaction over 20 training steps."""
    catalog = Catalog(teacher.dim)
    student = build_models(["student"], catalog, threshold=None)["student"]
    assert isinstance(student, Student)
    cfg: StudentConfig = student.cfg
    step = student._step
    counted = {"flops": 0.0, "events": 0, "steps": 0}

    def counting_step(batch: Any) -> None:
        if 100 <= student.steps < 120:  # a catalog of some size, as in the timed run
            with FlopCounterMode(display=False) as fc:
                step(batch)
            # the numpy refresh of cached content rows, not counted by torch: the rolling slice
            # and the batch's rows (about one per interaction), both heads and the projection
            refreshed = min(len(catalog), cfg.refresh_items) + len(batch)
            counted["flops"] += fc.get_total_flops() + refreshed * 2 * (
                catalog.dim * (cfg.hidden + cfg.teacher_rank) + cfg.hidden * (2 * cfg.dim + 1)
            )
            counted["events"] += len(batch)
        else:
            step(batch)

    student._step = counting_step  # type: ignore[method-assign]
    spent = 0.0
    with limit_threads(1):
        for rec in dataset.records():
            if isinstance(rec, Item):
                student.observe_item(catalog.add(rec.item_id, teacher.encode([text_of(rec)])[0]))
            elif isinstance(rec, User):
                text = text_of(rec)
                if text:
                    student.observe_user(rec.user_id, teacher.encode([text])[0])
            else:
                index = catalog.get(rec.item_id)
                if index is None:  # an unannounced item, as the worker applies it
                    index = catalog.add(rec.item_id, None)
                    student.observe_item(index)
                t0 = time.perf_counter()
                student.learn_one(rec.user_id, index, rec.value, rec.ts)
                spent += time.perf_counter() - t0
        t0 = time.perf_counter()
        student.flush()
        spent += time.perf_counter() - t0
    return {
        "student_in_memory_events_per_s": len(interactions) / spent,
        "student_mflop_per_event": counted["flops"] / max(1, counted["events"]) / 1e6,
    }


def _sgemm_gflops() -> float:
    """Single-thread float32 matrix product rate (1024^3, best of 5)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    with limit_threads(1):
        a @ b
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(4):
                a @ b
            best = max(best, 4 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9)
    return best


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
    results: dict[str, Any] = {"events": events, "machine": platform.machine(), "cores": cores()}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        data = Path(tmp) / "data"
        write_jsonl(generate(SyntheticConfig(users=5000, items=3000, events=events, seed=1)), data)
        dataset = open_dataset(data)
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="bench", partitions=3)
        ensure_topics(settings)
        publish_dataset(dataset, settings)
        topic = settings.topics.interactions
        records = list(dataset.records())
        interactions = [r for r in records if isinstance(r, Interaction)]
        total = len(interactions)
        texts = [text_of(r) for r in records if isinstance(r, Item | User)]

        results["raw_aiokafka_events_per_s"] = asyncio.run(_raw_aiokafka(settings, topic, total))
        results["faust_plain_events_per_s"] = asyncio.run(
            _faust_agent(settings, topic, min(plain_events, total), batches=False)
        )
        results["faust_batch_events_per_s"] = asyncio.run(
            _faust_agent(settings, topic, total, batches=True)
        )
        real = load_teacher(None)
        teacher = _Precomputed(real, [t for t in texts if t])
        results["teacher_texts"] = teacher.texts
        results["teacher_texts_per_s"] = teacher.texts / teacher.seconds
        results["worker_events_per_s"] = _worker(settings, teacher, total, Path(tmp) / "w1")
        for every in (10, 1):  # the default `coldstream worker`, and ranking every positive
            group = settings.model_copy(update={"group_id": f"bench-eval-{every}"})
            results[f"worker_eval_every_{every}_events_per_s"] = _worker(
                group, teacher, total, Path(tmp) / f"e{every}", eval_every=every
            )
        inline = settings.model_copy(update={"group_id": "bench-inline"})
        results["worker_with_teacher_events_per_s"] = _worker(inline, real, total, Path(tmp) / "w2")
        results.update(_student(dataset, teacher, interactions))
        results["river_events_per_s"] = _river(interactions)
    results["sgemm_gflops_1_thread"] = _sgemm_gflops()
    results["student_at_peak_events_per_s"] = (
        results["cores"]
        * results["sgemm_gflops_1_thread"]
        * 1e3
        / results["student_mflop_per_event"]
    )
    w = results["worker_events_per_s"]
    results["worker_vs_river"] = w / results["river_events_per_s"]
    for every in (10, 1):
        results[f"worker_eval_every_{every}_vs_river"] = (
            results[f"worker_eval_every_{every}_events_per_s"] / results["river_events_per_s"]
        )
    results["worker_vs_raw_aiokafka"] = w / results["raw_aiokafka_events_per_s"]
    results["worker_vs_faust_plain"] = w / results["faust_plain_events_per_s"]
    results["worker_vs_student_in_memory"] = w / results["student_in_memory_events_per_s"]
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
