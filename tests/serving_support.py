"""What the inference-worker tests share: a running ``serve`` on loopback (in a thread with its
own event loop), its HTTP client, an exporter writing signed snapshots, and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from exporters.snapshot import SnapshotExporter
from serving.server import InferenceServer, serve
from snapshotlib.store import SnapshotStore

KEY = "test-snapshot-key"


@dataclass
class Running:
    server: InferenceServer
    port: int
    settings: Settings

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, Any]:
        return call(urllib.request.Request(self.url(path)))

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        req = urllib.request.Request(self.url(path), data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        return call(req)

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


def call(req: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[Running]:
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


def signed_exporter(settings: Settings) -> SnapshotExporter:
    store = SnapshotStore(settings.snapshot_dir, key=KEY.encode())
    return SnapshotExporter(store, k_max=50, teacher="hashing")


def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def wait_rejected(srv: Running, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(srv.server.state.rejected) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {n} refused snapshots, got {srv.server.state.rejected}")
