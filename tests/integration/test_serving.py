"""The inference worker for real: HTTP on loopback, ONNX Runtime sessions, snapshots announced
on the embedded broker, hot reload under load, refusal of tampered snapshots, /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from exporters.snapshot import SnapshotExporter, serving_tables
from models.student import Student
from serving.server import InferenceServer, serve
from snapshotlib.store import SnapshotStore
from streams.topics import ensure_topics
from tests.snapshot_support import trained_student

pytestmark = pytest.mark.integration

KEY = "test-snapshot-key"


@dataclass
class Running:
    server: InferenceServer
    port: int
    settings: Settings

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, Any]:
        return _call(urllib.request.Request(self.url(path)))

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        req = urllib.request.Request(self.url(path), data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        return _call(req)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = urllib.request.urlopen(self.url("/metrics"), timeout=5).read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }

    def wait_version(self, version: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get("/readyz")
            if status == 200 and body["version"] >= version:
                return
            time.sleep(0.05)
        raise AssertionError(f"version {version} not served within {timeout} s: {body}")


def _call(req: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def trained() -> tuple[Student, Student]:
    """The same stream twice: a student halfway through, and one at the end (two versions)."""
    return trained_student(until=0.5)[0], trained_student()[0]


@contextlib.contextmanager
def _serving(settings: Settings) -> Iterator[Running]:
    """An inference worker on a free loopback port, in a thread with its own event loop."""
    server = InferenceServer(settings, threads=1)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    bound: list[int] = []
    started = threading.Event()

    def ready(port: int) -> None:
        bound.append(port)
        started.set()

    def run() -> None:
        loop.run_until_complete(serve(server, host="127.0.0.1", port=0, ready=ready, stop=stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(20), "the inference server did not start"
    try:
        yield Running(server, bound[0], settings)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def _exporter(settings: Settings) -> SnapshotExporter:
    store = SnapshotStore(settings.snapshot_dir, key=KEY.encode())
    return SnapshotExporter(store, k_max=50, teacher="hashing")


@pytest.fixture
def running(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[Running, SnapshotExporter]]:
    settings = settings_factory(
        snapshot_dir=tmp_path / "snapshots", snapshot_key=KEY, serve_poll_s=0.1
    )
    ensure_topics(settings)
    with _serving(settings) as srv:
        yield srv, _exporter(settings)


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
    exporter = _exporter(settings)
    exporter.export(trained[0])  # before start: loaded at startup
    with _serving(settings) as srv:
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
        _until(lambda: all(seen), "every client answered by version 1")
        snap = exporter.export(trained[1])
        producer = KafkaProducer(**settings.kafka_python_config())
        producer.send(settings.topics.snapshots, key=b"snapshot", value=exporter.announcement(snap))
        producer.flush(10)
        producer.close()
        srv.wait_version(2)
        _until(lambda: all(v[-1] == 2 for v in seen), "every client answered by version 2")
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


def test_tampered_snapshot_is_refused_and_the_old_one_kept(
    running: tuple[Running, SnapshotExporter], trained: tuple[Student, Student]
) -> None:
    srv, exporter = running
    exporter.export(trained[0])
    srv.wait_version(1)
    root = srv.settings.snapshot_dir
    staging = SnapshotStore(root.parent / "staging2", key=KEY.encode())
    for _ in range(3):
        staging.write(serving_tables(trained[1]), k_max=50, events_seen=1, newest_event_ts=None)
    # version 2: model.onnx altered after signing
    shutil.copytree(staging.root / "00000002", root / "00000002")
    blob = bytearray((root / "00000002" / "model.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (root / "00000002" / "model.onnx").write_bytes(bytes(blob))
    (root / "LATEST").write_text("00000002")
    _wait_rejected(srv, 1)
    # version 3: manifest edited (claims other events), signature no longer matches
    shutil.copytree(staging.root / "00000003", root / "00000003")
    manifest = json.loads((root / "00000003" / "manifest.json").read_text())
    manifest["events_seen"] = 10**9
    (root / "00000003" / "manifest.json").write_text(json.dumps(manifest))
    (root / "LATEST").write_text("00000003")
    _wait_rejected(srv, 2)
    status, body = srv.get("/recommend?user_id=u&k=3")
    assert status == 200 and body["version"] == 1
    m = srv.metrics()
    assert m[("coldstream_inference_snapshot_rejected_total", (("reason", "hash"),))] == 1.0
    assert m[("coldstream_inference_snapshot_rejected_total", (("reason", "signature"),))] == 1.0
    # and a good version after that is taken
    exporter.export(trained[1])
    srv.wait_version(4)


def test_garbage_in_latest_never_stops_the_watcher(
    running: tuple[Running, SnapshotExporter], trained: tuple[Student, Student]
) -> None:
    """Non-UTF-8 bytes in LATEST used to end the watcher for good (no log line, /readyz 200 on a
    stale version forever). Now: logged and counted once, the served version stays, /healthz
    stays ok because the watcher runs, and a repaired LATEST is followed."""
    srv, exporter = running
    exporter.export(trained[0])
    srv.wait_version(1)
    root = srv.settings.snapshot_dir
    exporter.export(trained[1])
    srv.wait_version(2)
    (root / "LATEST").write_bytes(b"\xff\xfe\x00 not a version")
    deadline = time.monotonic() + 10
    key = ("coldstream_inference_watch_errors_total", ())
    while srv.metrics().get(key, 0.0) < 1.0:
        assert time.monotonic() < deadline, "the damaged LATEST was not counted"
        time.sleep(0.05)
    time.sleep(0.5)  # five more polls: counted once, not per poll
    assert srv.metrics()[key] == 1.0
    assert srv.get("/healthz") == (200, {"status": "ok"}) and srv.server.watcher.watching()
    status, body = srv.get("/recommend?user_id=u&k=3")
    assert status == 200 and body["version"] == 2
    (root / "LATEST").write_text("00000001")  # repaired (an operator's rollback, too)
    deadline = time.monotonic() + 10
    while srv.get("/readyz")[1]["version"] != 1:
        assert time.monotonic() < deadline, "the repaired LATEST was not followed"
        time.sleep(0.05)


def test_serve_started_on_a_damaged_latest_loads_once_it_is_repaired(
    settings_factory: Callable[..., Settings], tmp_path: Path, trained: tuple[Student, Student]
) -> None:
    settings = settings_factory(
        snapshot_dir=tmp_path / "snapshots", snapshot_key=KEY, serve_poll_s=0.1
    )
    exporter = _exporter(settings)
    exporter.export(trained[0])
    (settings.snapshot_dir / "LATEST").write_bytes(b"\x80\x81")
    with _serving(settings) as srv:
        key = ("coldstream_inference_watch_errors_total", ())
        _until(lambda: srv.metrics().get(key, 0) >= 1, "the watcher met the damaged LATEST")
        assert srv.get("/readyz")[0] == 503
        assert srv.get("/healthz") == (200, {"status": "ok"})  # alive, and will load
        (settings.snapshot_dir / "LATEST").write_text("00000001")
        srv.wait_version(1)


def test_healthz_fails_when_the_watcher_is_not_running(
    running: tuple[Running, SnapshotExporter],
) -> None:
    srv, _ = running
    assert srv.get("/healthz")[0] == 200
    watch = srv.server.watcher._task
    assert watch is not None and watch.get_name() == "coldstream-watch"
    loop = watch.get_loop()
    loop.call_soon_threadsafe(watch.cancel)
    deadline = time.monotonic() + 5
    while not watch.done():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    status, body = srv.get("/healthz")
    assert status == 503 and "watcher" in body["status"]


def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def _wait_rejected(srv: Running, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(srv.server.state.rejected) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {n} refused snapshots, got {srv.server.state.rejected}")


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
    with _serving(settings) as srv:
        srv.wait_version(snap.version)
        user = next(u for u in student.state if student.state[u].hist)  # type: ignore[attr-defined]
        status, body = srv.get(f"/recommend?user_id={user}&k=10")
    assert status == 200 and body["version"] == snap.version and body["known"]
    want = np.argsort(-student.score_all(user))  # type: ignore[attr-defined]
    seen = set(student.state[user].hist)  # type: ignore[attr-defined]
    top = [student.catalog.ids[i] for i in want if i not in seen][:10]  # type: ignore[attr-defined]
    assert [it["item_id"] for it in body["items"]] == top


def test_pointing_latest_back_rolls_back(
    running: tuple[Running, SnapshotExporter], trained: tuple[Student, Student]
) -> None:
    srv, exporter = running
    exporter.export(trained[0])
    exporter.export(trained[1])
    srv.wait_version(2)
    (srv.settings.snapshot_dir / "LATEST").write_text("00000001")  # an operator's rollback
    deadline = time.monotonic() + 10
    while srv.get("/readyz")[1]["version"] != 1:
        assert time.monotonic() < deadline, "LATEST pointing back was not followed"
        time.sleep(0.05)
    assert srv.get("/recommend?user_id=u&k=3")[1]["version"] == 1
