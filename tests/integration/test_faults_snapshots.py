"""A snapshot writer killed mid-write, and damaged files in the store: serve keeps serving."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coldstream.children import Child, Http
from snapshotlib.store import SnapshotStore

pytestmark = pytest.mark.integration


_WRITER = """
import sys
from pathlib import Path
from exporters.snapshot import SnapshotExporter
from snapshotlib.store import SnapshotStore
from tests.snapshot_support import trained_student
student = trained_student(events=1500)[0]
store = SnapshotStore(Path(sys.argv[1]), keep=3)
exporter = SnapshotExporter(store, k_max=20, teacher="hashing")
exporter.export(student)
print("exported", flush=True)
while True:
    exporter.export(student)
"""


def _kill_mid_write(root: Path, log: Path) -> bool:
    """Start a process that writes snapshots into ``root`` without pause, kill -9 it as soon as
    a version is being written (its temporary directory exists); returns whether it died with
    a write unfinished (the temporary directory is still there)."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with log.open("w") as out:
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root)],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            env=env,
        )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "exported\n", log.read_text()
        before = set(root.glob(".0*-*"))
        deadline = time.monotonic() + 30
        while not set(root.glob(".0*-*")) - before:
            assert time.monotonic() < deadline, "no write seen"
        writer.kill()
        writer.wait(10)
    finally:
        writer.kill()
        writer.wait(10)
    return bool(set(root.glob(".0*-*")) - before)


def test_a_writer_killed_mid_snapshot_leaves_a_valid_store_and_serve_keeps_serving(
    tmp_path: Path,
) -> None:
    """A worker killed (-9) while it writes a snapshot: the store stays valid (LATEST names a
    complete, verified version), ``serve`` keeps answering, and the next writer goes on with
    the next version. Then garbage bytes in a new version's manifest: refused, counted, and
    the served version stays."""
    root = tmp_path / "snapshots"
    mid_write = _kill_mid_write(root, tmp_path / "writer0.log")
    env = {**os.environ, "COLDSTREAM_SNAPSHOT_DIR": str(root), "COLDSTREAM_SERVE_POLL_S": "0.1"}
    serve = Child("serve", ["serve", "--port", "0", "--host", "127.0.0.1"], env, tmp_path / "s.log")
    try:
        http = Http(serve.port(timeout=120))
        for attempt in range(1, 3):
            mid_write |= _kill_mid_write(root, tmp_path / f"writer{attempt}.log")
            store = SnapshotStore(root)
            latest = store.latest()
            assert latest is not None and store.open().version == int(latest)
            deadline = time.monotonic() + 20
            while (ready := http.call("GET", "/readyz"))[1].get("version") != int(latest):
                assert time.monotonic() < deadline, ready
                time.sleep(0.1)
            status, body = http.call("GET", "/recommend?user_id=u1&k=5")
            assert status == 200 and len(body["items"]) == 5
        assert mid_write, "no kill landed inside a write: the test did not test it"
        served = int(latest)
        bad = root / f"{served + 1:08d}"
        shutil.copytree(root / latest, bad)
        (bad / "manifest.json").write_bytes(b"\xff\xfe\x00{garbage")
        (root / "LATEST").write_text(bad.name)
        rejected = ("coldstream_inference_snapshot_rejected_total", (("reason", "unreadable"),))
        deadline = time.monotonic() + 20
        while http.metrics().get(rejected, 0.0) < 1:
            assert time.monotonic() < deadline, "the garbage manifest was not refused"
            time.sleep(0.1)
        assert http.call("GET", "/readyz")[1]["version"] == served
        assert http.call("GET", "/healthz")[0] == 200
    finally:
        serve.stop()
