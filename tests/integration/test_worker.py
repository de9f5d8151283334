"""The streaming worker on the real broker, with the real teacher and a real /metrics endpoint."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry, start_http_server

from bench.ranks_run import scrape
from core.records import Interaction
from core.settings import Settings
from exporters.metrics import WorkerMetrics
from models.catalog import Catalog
from models.evaluation import Prequential, run_prequential
from models.registry import build_models
from models.teacher import TextEncoder, text_of
from streams.app import WorkerApp, run_worker
from streams.broker import free_port
from streams.checkpoint import load_checkpoint
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics, read_topic
from streams.worker import WorkerCore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worker-data")
    write_jsonl(generate(SyntheticConfig(users=300, items=200, events=6000, seed=11)), out)
    return out


class _OneByOne:
    """The real teacher, encoding each text on its own (memoised). A transformer's output for a
    text moves by ~1e-7 with the other texts padded into its batch, and the student's ranking
    follows such noise; encoding one by one gives the live worker and the offline loop the very
    same vectors, so the two can be compared exactly."""

    def __init__(self, teacher: TextEncoder) -> None:
        self.teacher, self.name, self.dim = teacher, teacher.name, teacher.dim
        self.memo: dict[str, npt.NDArray[np.float32]] = {}

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        for t in texts:
            if t not in self.memo:
                self.memo[t] = self.teacher.encode([t])[0]
        return np.stack([self.memo[t] for t in texts]).reshape(len(texts), self.dim)


def _core(settings: Settings, teacher: TextEncoder, role: str = "all") -> tuple[WorkerCore, int]:
    registry = CollectorRegistry()
    core = WorkerCore(
        settings,
        role=role,
        teacher=teacher,
        metrics=WorkerMetrics.create(registry),
        window=10**9,  # one window over the whole run, to compare with offline evaluation
        encode_async=True,  # as `coldstream worker` runs it, but waiting for every encoding
        encode_hold_s=600.0,  # (the real teacher one text at a time is slow)
    )
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    return core, server.server_port


def test_worker_learns_the_stream_and_agrees_with_evaluate(
    dataset_dir: Path,
    settings_factory: Callable[..., Settings],
    real_teacher: TextEncoder,
    tmp_path: Path,
) -> None:
    settings = settings_factory(partitions=1)
    ensure_topics(settings)
    dataset = open_dataset(dataset_dir)
    publish_dataset(dataset, settings)
    counts = dataset.counts()

    teacher = _OneByOne(real_teacher)
    core, port = _core(settings, teacher)
    worker = WorkerApp(settings, core, checkpoint_dir=tmp_path / "ckpt", checkpoint_s=1.0)
    asyncio.run(
        asyncio.wait_for(
            run_worker(worker, until=lambda w: w.core.model_events >= counts["interaction"]), 120
        )
    )
    metrics = scrape(port)
    topics = settings.topics
    applied = {
        t: metrics[("coldstream_events_total", (("outcome", "applied"), ("topic", t)))]
        for t in (topics.interactions, topics.items, topics.users)
    }
    assert applied == {
        topics.interactions: counts["interaction"],
        topics.items: counts["item"],
        topics.users: counts["user"],
    }
    assert metrics[("coldstream_model_events", ())] == counts["interaction"]
    assert metrics[("coldstream_event_to_model_seconds_count", ())] == counts["interaction"]
    assert metrics[("coldstream_teacher_encode_seconds_count", ())] >= 1
    assert metrics[("coldstream_checkpoint_seconds_count", ())] >= 1

    # the same events through `coldstream evaluate`'s loop, offline
    catalog = Catalog(teacher.dim)
    offline = Prequential(
        build_models(["student", "river", "popularity"], catalog, threshold=None), catalog, k=20
    )
    embeddings = {
        (r.kind, r.key): teacher.encode([text])[0]
        for r in dataset.records()
        if not isinstance(r, Interaction) and (text := text_of(r))
    }
    expected = run_prequential(dataset.records(), offline, embeddings).report()
    for model in ("student", "river", "popularity"):
        for sl in ("all", "0", "1-5", "6-20", ">20", "new_user"):
            live = metrics[("coldstream_recall_at_k", (("model", model), ("slice", sl)))]
            want = expected["models"][model]["recall"][sl]
            # The core aligns the three topics by event time, the teacher gives both loops the
            # same vectors, and checkpoints carry the student's pending micro-batch instead of
            # flushing it: every model, the student included, matches exactly.
            assert abs(live - want) <= 1e-9, (model, sl, live, want)


def test_invalid_messages_go_to_the_dead_letter_topic(
    settings_factory: Callable[..., Settings], real_teacher: TextEncoder, tmp_path: Path
) -> None:
    settings = settings_factory(partitions=1)
    ensure_topics(settings)
    producer = KafkaProducer(**settings.kafka_python_config())
    t = settings.topics.interactions
    bad = [
        b"not json",
        b'{"user_id": "u1"}',
        b'{"user_id": "u", "item_id": "i", "ts": "soon"}',
        b"\xff\xfe",
    ]
    producer.send(
        settings.topics.items, orjson.dumps({"item_id": "i", "title": "A tent", "ts": 1.7e12})
    )
    for i, raw in enumerate(bad):
        producer.send(t, raw)
        producer.send(t, orjson.dumps({"user_id": f"u{i}", "item_id": "i", "ts": 1.7e12 + i}))
    producer.flush()
    producer.close()

    core, port = _core(settings, real_teacher, role="student")
    worker = WorkerApp(settings, core, checkpoint_dir=tmp_path / "ckpt")
    asyncio.run(asyncio.wait_for(run_worker(worker, until=lambda w: w.core.model_events >= 4), 120))
    dlq = [orjson.loads(m.value) for m in read_topic(settings, settings.topics.dlq, idle_s=1.0)]
    assert sorted(d["reason"] for d in dlq) == [
        "bad_timestamp",
        "missing_field",
        "not_json",
        "not_json",
    ]
    assert {d["topic"] for d in dlq} == {t}
    assert sorted(d["offset"] for d in dlq) == [0, 2, 4, 6]
    assert any(d.get("raw_encoding") == "base64" for d in dlq)
    metrics = scrape(port)
    assert metrics[("coldstream_events_total", (("outcome", "invalid"), ("topic", t)))] == 4
    assert metrics[("coldstream_dead_letters_total", (("reason", "not_json"),))] == 2
    assert core.model_events == 4


def _worker_process(settings: Settings, ckpt: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COLDSTREAM_BROKER": settings.broker,
        "COLDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "COLDSTREAM_CHECKPOINT_DIR": str(ckpt),
        "COLDSTREAM_METRICS_PORT": str(port),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coldstream.cli",
            "worker",
            "--role",
            "student",
            "--checkpoint-events",
            "1500",
            "--checkpoint-s",
            "60",
            "--max-poll-records",
            "500",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_metric(port: int, name: str, done: Callable[[float], bool], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    value = -1.0
    while time.monotonic() < deadline:
        try:
            value = scrape(port).get((name, ()), -1.0)
        except OSError:
            value = -1.0
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"{name} stayed at {value}")


def test_kill_9_and_restart_applies_every_event_exactly_once(
    dataset_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(partitions=2)
    ensure_topics(settings)
    dataset = open_dataset(dataset_dir)
    publish_dataset(dataset, settings)
    total = dataset.counts()["interaction"]
    ckpt = tmp_path / "ckpt"
    port = free_port()

    def checkpointed() -> int:
        saved = load_checkpoint(ckpt / "student")  # written atomically: never torn
        return int(saved[0]["model_events"]) if saved is not None else 0

    first = _worker_process(settings, ckpt, port)
    try:
        # kill once a checkpoint holds some progress and more has been applied since
        seen = _wait_metric(
            port, "coldstream_model_events", lambda v: v >= 2000 and checkpointed() > 0, 180
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    saved = load_checkpoint(ckpt / "student")
    assert saved is not None, "a checkpoint was written before the crash"
    state, _ = saved
    assert 0 < state["model_events"] <= seen <= total

    second = _worker_process(settings, ckpt, port)
    try:
        final = _wait_metric(port, "coldstream_model_events", lambda v: v >= total, 180)
        time.sleep(2.0)  # anything applied twice would push the count past the total
        assert scrape(port)[("coldstream_model_events", ())] == final == total
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    state, offsets = load_checkpoint(ckpt / "student")  # type: ignore[misc]
    assert state["model_events"] == total
    assert sum(o for (t, _), o in offsets.items() if t == settings.topics.interactions) == total
