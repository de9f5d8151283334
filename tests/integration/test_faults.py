"""Faults an operator meets, on the real embedded broker and real ``coldstream worker``
processes: a broker that comes back empty, one that comes back with its data (kept in an
S3-compatible store), SIGTERM while the broker is gone."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from coldstream.children import Child, Http, Samples
from core.settings import Settings
from exporters.metrics import WorkerMetrics
from models.teacher import load_teacher
from streams.app import WorkerApp, run_worker
from streams.broker import EmbeddedBroker, free_port, kafka_answers
from streams.checkpoint import load_checkpoint
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


# -- real worker processes against a broker that goes away --------------------------------------


@pytest.fixture
def s3_store() -> Iterator[dict[str, str]]:
    """An S3-compatible store on loopback (moto's server, from PyPI), with a bucket; yields the
    environment that points the embedded broker at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                put = urllib.request.Request(f"{endpoint}/coldstream", method="PUT")
                urllib.request.urlopen(put, timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the S3 store did not start"
                time.sleep(0.2)
        yield {
            "AWS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
    finally:
        proc.terminate()
        proc.wait(10)


def _kill_9(broker: EmbeddedBroker) -> None:
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGKILL)
    broker.stop()  # reaps it
    assert not kafka_answers(broker.host, int(broker.port or 0))


def _worker(settings: Settings, tmp: Path) -> tuple[Child, Http]:
    env = {
        **os.environ,
        "COLDSTREAM_BROKER": settings.broker,
        "COLDSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "COLDSTREAM_CHECKPOINT_DIR": str(tmp / "ckpt"),
        "COLDSTREAM_SNAPSHOT_DIR": str(tmp / "snapshots"),
    }
    args = ["worker", "--teacher", "hashing", "--metrics-port", "0", "--checkpoint-s", "1"]
    child = Child("worker", args, env, tmp / "worker.log")
    return child, Http(child.port(timeout=120))


def _wait(http: Http, done: Callable[[Samples], bool], what: str, timeout: float = 120) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = http.metrics()
        if samples and done(samples):
            return samples
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {samples}"
        time.sleep(0.1)


def _value(name: str, **labels: str) -> Callable[[Samples], float]:
    key = (name, tuple(sorted(labels.items())))
    return lambda samples: samples.get(key, -1.0)


applied = _value("coldstream_model_events")
connected = _value("coldstream_broker_connected")


def _apply_then_kill(http: Http, broker: EmbeddedBroker, events: int) -> Samples:
    """Wait until the worker has applied ``events`` while connected, kill -9 the broker, and
    wait until the worker shows the outage; returns the metrics then."""
    _wait(http, lambda m: applied(m) == events and connected(m) == 1, f"{events} events")
    _kill_9(broker)
    return _wait(http, lambda m: connected(m) == 0, "the outage to show")


def _sigterm(child: Child, limit: float = 10.0) -> float:
    """SIGTERM the worker; returns the seconds it took to exit (fails past ``limit``)."""
    t = time.monotonic()
    child.proc.send_signal(signal.SIGTERM)
    try:
        child.proc.wait(limit)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        raise AssertionError(f"the worker still ran {limit:.0f} s after SIGTERM") from None
    took = time.monotonic() - t
    child.stop()
    assert child.proc.returncode == 0, child.log.read_text()[-3000:]
    return took


def test_sigterm_while_the_broker_is_down_exits_within_ten_seconds(tmp_path: Path) -> None:
    """Before: a worker whose broker was gone ignored SIGTERM (alive 3 minutes later), and the
    outage showed in no metric, only in ~80 unformatted Kafka client lines a second. Now: the
    outage is a gauge and one logged state change, and SIGTERM writes the checkpoint and exits
    within 10 s."""
    with EmbeddedBroker() as broker:
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="down", partitions=2)
        ensure_topics(settings)
        _publish(settings, "a", items=10, interactions=400, ts=1.7e12)
        child, http = _worker(settings, tmp_path)
        try:
            down = _apply_then_kill(http, broker, 400)
            assert _value("coldstream_broker_disconnects_total")(down) == 1
            time.sleep(3)  # the Kafka client retries many times a second meanwhile
            stalled = _value("coldstream_fetch_stall_seconds")(http.metrics())
            assert stalled >= 3
            took = _sigterm(child)
        finally:
            child.stop()
    saved = load_checkpoint(tmp_path / "ckpt" / "student")
    assert saved is not None and saved[0]["model_events"] == 400
    log = child.log.read_text()
    assert "lost the connection to the broker" in log and "stopping" in log
    # one format: time, level, logger; and the retries are not logged one by one
    kafka = [line for line in log.splitlines() if " aiokafka" in line]
    assert all(line[:4].isdigit() and " aiokafka" in line.split(": ")[0] for line in kafka)
    assert len(kafka) < 30, "\n".join(kafka[:40])
    print(f"exited {took:.1f} s after SIGTERM; {len(kafka)} Kafka client lines in the outage")


def test_a_worker_whose_broker_restarts_empty_resumes_on_new_events(tmp_path: Path) -> None:
    """The in-memory broker restarts on the same port with none of the records: the worker
    reconnects, logs and counts the reset of each partition, and applies every new event."""
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="empty", partitions=1)
        ensure_topics(settings)
        _publish(settings, "a", items=10, interactions=300, ts=1.7e12)
        child, http = _worker(settings, tmp_path)
        try:
            _apply_then_kill(http, broker, 300)
            with EmbeddedBroker(port=port):
                ensure_topics(settings)
                _publish(settings, "b", items=6, interactions=120, ts=1.71e12)
                back = _wait(
                    http, lambda m: applied(m) == 420 and connected(m) == 1, "the new events"
                )
                for topic in (settings.topics.interactions, settings.topics.items):
                    assert _value("coldstream_offset_resets_total", topic=topic)(back) == 1
                _sigterm(child)
        finally:
            child.stop()
    log = child.log.read_text()
    assert "is reachable again" in log and "reading it again from offset 0" in log


def test_a_broker_killed_mid_stream_with_its_data_in_s3_loses_and_repeats_nothing(
    tmp_path: Path, s3_store: dict[str, str]
) -> None:
    """Persistence: the broker keeps its records and group offsets in an S3-compatible store.
    It is killed (-9) after the first 3,000 interactions and started again on the same store,
    and 1,000 more arrive: the worker reconnects, finds its partitions where they were (no
    reset: the offsets go on from 3,000), and every interaction is applied exactly once."""
    port = free_port()
    storage = "s3://coldstream/"
    with EmbeddedBroker(port=port, storage=storage, env=s3_store) as broker:
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="s3", partitions=2)
        ensure_topics(settings)
        _publish(settings, "a", items=20, interactions=3000, ts=1.7e12)
        child, http = _worker(settings, tmp_path)
        try:
            _apply_then_kill(http, broker, 3000)
            with EmbeddedBroker(port=port, storage=storage, env=s3_store):
                _publish(settings, "a", items=20, interactions=1000, ts=1.71e12)
                back = _wait(http, lambda m: applied(m) >= 4000, "every event", timeout=180)
                assert (
                    _value("coldstream_offset_resets_total", topic=settings.topics.interactions)(
                        back
                    )
                    == 0
                )
                time.sleep(2)  # nothing applied twice arrives late
                assert applied(http.metrics()) == 4000
                _sigterm(child)
        finally:
            child.stop()
    saved = load_checkpoint(tmp_path / "ckpt" / "student")
    assert saved is not None
    state, offsets = saved
    read = {p: o for (t, p), o in offsets.items() if t == settings.topics.interactions}
    assert state["model_events"] == 4000 and sum(read.values()) == 4000 and min(read.values()) > 0


# -- the snapshot store under a writer killed mid-write, and garbage in it ---------------------


def test_1_mb_and_10_mb_poison_messages_become_one_dead_letter_each(tmp_path: Path) -> None:
    """Oversized poison on the interactions topic: each becomes one dead letter that keeps the
    reason, topic, partition, offset, size and sha256 with its raw bytes cut to fit the
    producer's limit, and the valid events around them are applied."""
    with EmbeddedBroker() as broker:
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="big", partitions=1)
        ensure_topics(settings)
        _publish(settings, "a", items=5, interactions=10, ts=1.7e12)
        poison = {1_000_000: b"\xff" * 1_000_000, 10_000_000: b"{" + b"x" * 9_999_999}
        producer = KafkaProducer(**settings.kafka_python_config(), max_request_size=11_000_000)
        for blob in poison.values():
            producer.send(settings.topics.interactions, blob).get(timeout=30)
        producer.close()
        _publish(settings, "b", items=5, interactions=10, ts=1.7e12 + 10**6)
        core, registry = _run(settings, tmp_path / "ckpt", until=20)
        assert core.model_events == 20
        reader = KafkaConsumer(
            **settings.kafka_python_config(), consumer_timeout_ms=5000, auto_offset_reset="earliest"
        )
        tp = TopicPartition(settings.topics.dlq, 0)
        reader.assign([tp])
        reader.seek(tp, 0)
        letters = [orjson.loads(m.value) for m in reader]
        reader.close()
    assert len(letters) == 2
    by_size = {d["size"]: d for d in letters}
    assert set(by_size) == set(poison)
    for size, blob in poison.items():
        d = by_size[size]
        assert d["topic"] == settings.topics.interactions and d["partition"] == 0
        assert d["offset"] in (10, 11) and d["raw_truncated"] is True
        assert d["sha256"] == hashlib.sha256(blob).hexdigest()
    assert by_size[1_000_000]["reason"] == "not_json"  # not UTF-8
    assert by_size[10_000_000]["reason"] == "too_large"  # over the limit's message size
    assert registry.get_sample_value("coldstream_dead_letters_failed_total") == 0
