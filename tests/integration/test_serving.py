"""The inference worker for real: HTTP on loopback, ONNX Runtime sessions, snapshots announced
on the embedded broker and swapped in under load, /metrics, a worker's snapshots served."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from core.settings import Settings
from exporters.snapshot import SnapshotExporter
from models.student import Student
from snapshotlib.store import SnapshotStore
from streams.topics import ensure_topics
from tests.serving_support import (
    KEY,
    Running,
    serving,
    signed_exporter,
    until,
)

pytestmark = pytest.mark.integration


def test_not_ready_until_a_snapshot_then_serves_it(
    running: tuple[Running, SnapshotExporter], trained: tuple[Student, Student]
) -> None:
    srv, exporter = running
    assert srv.get("/healthz") == (200, {"status": "ok"})
    status, body = srv.get("/readyz")
    assert status == 503 and "no snapshot" in body["reason"]
    status, body = srv.get("/recommend?user_id=u1")
    assert status == 503 and "no snapshot" in body["error"]

    student = trained[1]
    exporter.export(student)
    srv.wait_version(1)
    status, body = srv.get("/readyz")
    assert body["provider"] == "CPUExecutionProvider"  # no GPU here; what the session uses
    assert body["items"] == len(student.catalog)

    user = next(u for u in student.state if student.state[u].hist)
    status, body = srv.get(f"/recommend?user_id={user}&k=7")
    assert status == 200 and body["version"] == 1 and body["known"] is True
    assert len(body["items"]) == 7
    seen = {student.catalog.ids[i] for i in student.state[user].hist}
    assert not seen & {it["item_id"] for it in body["items"]}

    status, body = srv.get("/recommend?user_id=someone-new&k=5")
    assert status == 200 and body["known"] is False and len(body["items"]) == 5

    status, body = srv.post("/recommend", json.dumps({"user_ids": [user, "x"], "k": 3}).encode())
    assert status == 200 and body["version"] == 1
    assert [r["known"] for r in body["results"]] == [True, False]
    assert all(len(r["items"]) == 3 for r in body["results"])

    item = student.catalog.ids[0]
    status, body = srv.post("/score", json.dumps({"user_id": user, "item_ids": [item]}).encode())
    assert status == 200 and isinstance(body["scores"][0]["score"], float)
    status, body = srv.get(f"/similar?item_id={item}&k=4")
    assert status == 200 and len(body["items"]) == 4


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("GET", "/recommend", None, 400, "missing user_id"),
        ("GET", "/recommend?user_id=u&k=0", None, 400, "k must be"),
        ("GET", "/recommend?user_id=u&k=abc", None, 400, "k must be"),
        ("GET", "/recommend?user_id=u&k=51", None, 400, "from 1 to 50"),
        ("POST", "/recommend", b"not json", 400, "not JSON"),
        ("POST", "/recommend", b"[1, 2]", 400, "JSON object"),
        ("POST", "/recommend", b'{"user_ids": "u1"}', 400, "non-empty list"),
        ("POST", "/recommend", b'{"user_ids": [1]}', 400, "non-empty list"),
        ("POST", "/recommend", b'{"user_ids": ["u"], "k": true}', 400, "k must be"),
        ("POST", "/score", b'{"item_ids": ["i"]}', 400, "user_id"),
        ("POST", "/score", b'{"user_id": "u", "item_ids": []}', 400, "item_ids"),
        ("GET", "/similar", None, 400, "missing item_id"),
        ("GET", "/similar?item_id=no-such-item", None, 404, "unknown item_id"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(
    running: tuple[Running, SnapshotExporter],
    trained: tuple[Student, Student],
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    says: str,
) -> None:
    srv, exporter = running
    exporter.export(trained[0])
    srv.wait_version(1)
    got, answer = srv.get(path) if method == "GET" else srv.post(path, body or b"")
    assert got == status and says in answer["error"]
    assert srv.get("/readyz")[0] == 200  # and nothing broke


def test_announced_snapshot_swaps_in_under_load_with_zero_failures(
    settings_factory: Callable[..., Settings], tmp_path: Path, trained: tuple[Student, Student]
) -> None:
    # LATEST is polled only once a minute here: the swap below can only come from the topic
    settings = settings_factory(
        snapshot_dir=tmp_path / "snapshots", snapshot_key=KEY, serve_poll_s=60.0
    )
    ensure_topics(settings)
    exporter = signed_exporter(settings)
    exporter.export(trained[0])  # before start: loaded at startup
    with serving(settings) as srv:
        srv.wait_version(1)
        seen: list[list[int]] = [[], [], []]  # versions each client got, in its order
        failures: list[str] = []
        done = threading.Event()

        def client(versions: list[int]) -> None:
            while not done.is_set():
                status, body = srv.get("/recommend?user_id=someone&k=10")
                if status != 200 or len(body.get("items", [])) != 10:
                    failures.append(f"{status} {body}")
                else:
                    versions.append(body["version"])

        clients = [threading.Thread(target=client, args=(v,)) for v in seen]
        for c in clients:
            c.start()
        until(lambda: all(seen), "every client answered by version 1")
        snap = exporter.export(trained[1])
        producer = KafkaProducer(**settings.kafka_python_config())
        producer.send(settings.topics.snapshots, key=b"snapshot", value=exporter.announcement(snap))
        producer.flush(10)
        producer.close()
        srv.wait_version(2)
        until(lambda: all(v[-1] == 2 for v in seen), "every client answered by version 2")
        done.set()
        for c in clients:
            c.join(10)
        assert not failures, failures[:3]
        for versions in seen:
            assert versions[0] == 1 and versions[-1] == 2
            assert versions == sorted(versions), "a client got the old version after the new one"
        m = srv.metrics()
    assert m[("coldstream_inference_snapshot_version", ())] == 2.0
    assert m[("coldstream_inference_snapshot_load_seconds_count", ())] == 2.0
    assert m[("coldstream_event_to_servable_seconds_count", ())] == 2.0
    ok = m[("coldstream_inference_requests_total", (("endpoint", "recommend"), ("status", "200")))]
    assert ok == sum(len(v) for v in seen)


def test_metrics_page_has_the_inference_metrics(
    running: tuple[Running, SnapshotExporter], trained: tuple[Student, Student]
) -> None:
    srv, exporter = running
    exporter.export(trained[0])
    srv.wait_version(1)
    for _ in range(5):
        assert srv.get("/recommend?user_id=u&k=5")[0] == 200
    m = srv.metrics()
    assert m[("coldstream_inference_provider", (("provider", "CPUExecutionProvider"),))] == 1.0
    assert m[("coldstream_inference_provider", (("provider", "CUDAExecutionProvider"),))] == 0.0
    count = m[("coldstream_inference_request_seconds_count", (("endpoint", "recommend"),))]
    assert count == 5.0
    fast = m[
        ("coldstream_inference_request_seconds_bucket", (("endpoint", "recommend"), ("le", "0.1")))
    ]
    assert fast == 5.0  # a 200-item catalog answers well inside 100 ms
    assert m[("coldstream_inference_snapshot_created_timestamp_seconds", ())] > 1.7e9


def test_worker_exports_snapshots_that_serving_loads(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """The worker's snapshot hook with the real exporter: snapshots every 0.5 s while it
    learns a loaded stream, each announced on the topic; the last one is what it learned."""
    from prometheus_client import CollectorRegistry

    from coldstream.runner import _snapshot_hook
    from exporters.metrics import WorkerMetrics
    from models.teacher import load_teacher
    from streams.app import WorkerApp, run_worker
    from streams.datasets import open_dataset
    from streams.load import publish_dataset
    from streams.synthetic import SyntheticConfig, generate, write_jsonl
    from streams.topics import read_topic
    from streams.worker import WorkerCore

    settings = settings_factory(
        partitions=2, snapshot_dir=tmp_path / "snapshots", snapshot_key=KEY, serve_poll_s=0.1
    )
    ensure_topics(settings)
    data = tmp_path / "data"
    write_jsonl(generate(SyntheticConfig(users=150, items=120, events=3000, seed=4)), data)
    dataset = open_dataset(data)
    publish_dataset(dataset, settings)
    metrics = WorkerMetrics.create(CollectorRegistry())
    core = WorkerCore(settings, role="student", teacher=load_teacher("hashing"), metrics=metrics)
    hook = _snapshot_hook(settings, core, metrics)
    assert hook is not None
    worker = WorkerApp(
        settings, core, checkpoint_dir=tmp_path / "ckpt", on_snapshot=hook, snapshot_s=0.5
    )
    interactions = dataset.counts()["interaction"]
    asyncio.run(
        asyncio.wait_for(
            run_worker(worker, until=lambda w: w.core.model_events >= interactions), 120
        )
    )
    store = SnapshotStore(settings.snapshot_dir, key=KEY.encode())
    snap = store.open()
    student = core.models["student"]
    assert snap.manifest["events_seen"] == interactions
    assert {(o["topic"], o["partition"]): o["offset"] for o in snap.manifest["offsets"]} == {
        k: v for k, v in core.offsets.items()
    }
    announced = [
        orjson.loads(m.value) for m in read_topic(settings, settings.topics.snapshots, idle_s=1.0)
    ]
    assert announced and announced[-1]["version"] == snap.version
    assert metrics.snapshot_version._value.get() == snap.version  # type: ignore[attr-defined]
    with serving(settings) as srv:
        srv.wait_version(snap.version)
        user = next(u for u in student.state if student.state[u].hist)  # type: ignore[attr-defined]
        status, body = srv.get(f"/recommend?user_id={user}&k=10")
    assert status == 200 and body["version"] == snap.version and body["known"]
    want = np.argsort(-student.score_all(user))  # type: ignore[attr-defined]
    seen = set(student.state[user].hist)  # type: ignore[attr-defined]
    top = [student.catalog.ids[i] for i in want if i not in seen][:10]  # type: ignore[attr-defined]
    assert [it["item_id"] for it in body["items"]] == top
