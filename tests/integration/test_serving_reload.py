"""Hot reload that never stops serving: tampered snapshots refused, a damaged ``LATEST`` survived
and repaired, a dead watcher seen by ``/healthz``, rollback by pointing ``LATEST`` back."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from exporters.snapshot import SnapshotExporter, serving_tables
from models.student import Student
from snapshotlib.store import SnapshotStore
from tests.serving_support import (
    KEY,
    Running,
    serving,
    signed_exporter,
    until,
    wait_rejected,
)

pytestmark = pytest.mark.integration


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
    wait_rejected(srv, 1)
    # version 3: manifest edited (claims other events), signature no longer matches
    shutil.copytree(staging.root / "00000003", root / "00000003")
    manifest = json.loads((root / "00000003" / "manifest.json").read_text())
    manifest["events_seen"] = 10**9
    (root / "00000003" / "manifest.json").write_text(json.dumps(manifest))
    (root / "LATEST").write_text("00000003")
    wait_rejected(srv, 2)
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
    exporter = signed_exporter(settings)
    exporter.export(trained[0])
    (settings.snapshot_dir / "LATEST").write_bytes(b"\x80\x81")
    with serving(settings) as srv:
        key = ("coldstream_inference_watch_errors_total", ())
        until(lambda: srv.metrics().get(key, 0) >= 1, "the watcher met the damaged LATEST")
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
