"""A real Prometheus scraping a live worker and a live inference worker; every PromQL
expression of the Grafana dashboard must return data through Prometheus's HTTP API, and
``promtool check metrics`` must accept both ``/metrics`` pages.

Prometheus and promtool come from Debian's ``prometheus`` package (``.ci/run`` installs it).
Without them the test is skipped, unless ``COLDSTREAM_REQUIRE_PROMETHEUS=1`` (set by CI), where
it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from bench.dashboards import Query, queries, start_prometheus
from coldstream.children import Child
from core.settings import Settings
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration

SCRAPE_S = 1


def _binaries() -> tuple[str, str]:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if prom is None or tool is None:
        message = "prometheus/promtool not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("COLDSTREAM_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return prom, tool


@dataclass
class Stack:
    worker_port: int
    serve_port: int
    prometheus: str  # base URL
    promtool: str

    def query(self, promql: str) -> dict[str, Any]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body: dict[str, Any] = orjson.loads(resp.read())
        return body


def _get(url: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def stack(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prom, tool = _binaries()
    tmp = tmp_path_factory.mktemp("prometheus")
    settings = Settings.load(broker=broker.bootstrap, topic_prefix="promtest", partitions=2)
    ensure_topics(settings)
    data = tmp / "data"
    write_jsonl(generate(SyntheticConfig(users=200, items=150, events=4000, seed=8)), data)
    dataset = open_dataset(data)
    publish_dataset(dataset, settings)
    producer = KafkaProducer(**settings.kafka_python_config())
    for poison in (b"not json", b'{"user_id": "u"}'):  # dead letters, so their series exist
        producer.send(settings.topics.interactions, poison)
    producer.flush()
    producer.close()
    env = {
        **os.environ,
        "COLDSTREAM_BROKER": broker.bootstrap,
        "COLDSTREAM_TOPIC_PREFIX": "promtest",
        "COLDSTREAM_TEACHER_MODEL": "hashing",
        "COLDSTREAM_SNAPSHOT_DIR": str(tmp / "snapshots"),
        "COLDSTREAM_CHECKPOINT_DIR": str(tmp / "checkpoints"),
        "COLDSTREAM_SNAPSHOT_INTERVAL_S": "1",
    }
    children: list[Child] = []
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        worker = ["worker", "--role", "all", "--metrics-port", "0"]
        children.append(Child("worker", worker, env, tmp / "worker.log"))
        children.append(
            Child(
                "serve",
                ["serve", "--host", "127.0.0.1", "--port", "0", "--threads", "1"],
                env,
                tmp / "serve.log",
            )
        )
        worker_port, serve_port = (c.port() for c in children)
        prometheus, url = start_prometheus(
            prom, tmp, {"worker": worker_port, "serve": serve_port}, SCRAPE_S
        )
        s = Stack(worker_port, serve_port, url, tool)
        _drive(s, settings, dataset.counts()["interaction"])
        yield s
    finally:
        if prometheus is not None:
            prometheus.terminate()
        for child in children:
            child.stop()
        if prometheus is not None:
            prometheus.wait(20)


def _drive(s: Stack, settings: Settings, interactions: int) -> None:
    """Wait for the worker to learn the stream and a snapshot to be served, send traffic over
    several scrapes (rates need two samples), and wait until Prometheus has it all."""
    serve = f"http://127.0.0.1:{s.serve_port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            up = s.query("coldstream_model_events")["data"]["result"]
            done = up and float(up[0]["value"][1]) >= interactions
            if done and _get(f"{serve}/readyz") == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("worker/serve/prometheus not ready within 180 s")
        time.sleep(0.5)
    end = time.monotonic() + 6 * SCRAPE_S
    while time.monotonic() < end:
        for user in ("u1", "u2", "nobody"):
            assert _get(f"{serve}/recommend?user_id={user}&k=10") == 200
        _get(f"{serve}/recommend?user_id=u1&k=0")  # a 400, so error rates have a series
        _get(f"{serve}/similar?item_id=i1&k=5")
        _get(f"{serve}/score", orjson.dumps({"user_id": "u1", "item_ids": ["i1"]}))
        time.sleep(0.1)  # a steady trickle of requests, not a wait for a condition
    # Prometheus has it all once both targets were scraped twice after the traffic ended
    after = time.time() + SCRAPE_S
    deadline = time.monotonic() + 30 * SCRAPE_S
    while True:
        last = s.query("min(timestamp(up))")["data"]["result"]
        if last and float(last[0]["value"][1]) >= after:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Prometheus did not scrape both targets after the traffic: {last}"
            )
        time.sleep(0.1)


#: series only a worker under torchrun has (exporters.metrics.RankMetrics)
RANK_METRICS = {
    "coldstream_rank",
    "coldstream_syncs_total",
    "coldstream_sync_seconds_sum",
    "coldstream_sync_seconds_count",
    "coldstream_sync_part_seconds_total",
    "coldstream_sync_bytes_total",
    "coldstream_cuts_total",
}


@pytest.mark.parametrize("q", queries(), ids=lambda q: f"{q.panel}/{q.ref}")
def test_every_dashboard_query_returns_data(stack: Stack, q: Query) -> None:
    promql = q.promql(rate_interval="30s", interval="5s", time_range="5m")
    body = stack.query(promql)
    assert body["status"] == "success", (promql, body)
    if q.metrics() <= RANK_METRICS:
        # the "Ranks" row: this stack's worker is one process, not torchrun ranks, so the
        # query must parse and run but has no series (tests/integration/test_ranks.py scrapes
        # the ranks' own /metrics)
        return
    assert body["data"]["result"], f"no data for {promql!r} (panel {q.panel!r})"


@pytest.mark.parametrize("which", ["worker", "serve"])
def test_promtool_accepts_the_metrics_pages(stack: Stack, which: str) -> None:
    port = stack.worker_port if which == "worker" else stack.serve_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    done = subprocess.run(
        [stack.promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_prometheus_scrapes_both_targets(stack: Stack) -> None:
    up = {r["metric"]["job"]: r["value"][1] for r in stack.query("up")["data"]["result"]}
    assert up == {"worker": "1", "serve": "1"}
