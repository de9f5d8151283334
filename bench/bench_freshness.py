"""Benchmark: event-to-servable latency on the embedded broker, with 1-second snapshots.

Three processes, as in production: the embedded broker, ``coldstream worker --role student``
(real MiniLM teacher, ``COLDSTREAM_SNAPSHOT_INTERVAL_S=1``) and ``coldstream serve``. A
generated dataset is loaded first (the backlog the worker learns before the live phase); then
for ``--seconds`` a producer sends interactions at ``--rate`` events/s stamped with the
current time, and a brand-new item every 2 s. Measured:

- ``event_to_servable``: for each snapshot version the server swaps in, wall-clock time at the
  swap (seen by polling ``/readyz`` every 10 ms) minus the newest event time in that snapshot;
- ``new_item_to_servable``: from sending a new item's event to the first ``POST /score`` that
  knows the item (polled every 10 ms);
- ``worker_item_to_rankable`` and ``event_to_model``: in the worker, a new item's event time to
  the moment it enters the catalog (rankable), and an interaction's event time to the moment
  it is applied; percentiles of the worker's own histograms over the live phase
  (``coldstream_item_to_rankable_seconds``, ``coldstream_event_to_model_seconds``),
  interpolated inside buckets as ``histogram_quantile`` does.

Run: ``python -m bench.bench_freshness`` (``--seconds 60 --rate 200``, ``--json FILE``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

from bench.common import show
from coldstream.children import Child, Http
from core.settings import Settings
from streams.broker import EmbeddedBroker
from streams.datasets import open_dataset
from streams.load import publish_dataset
from streams.synthetic import SyntheticConfig, generate, write_jsonl
from streams.topics import ensure_topics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=200.0, help="live interactions per second")
    ap.add_argument("--backlog", type=int, default=20_000, help="events loaded before")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = Settings.load(broker=broker.bootstrap, topic_prefix="fresh", partitions=3)
        ensure_topics(settings)
        data = Path(tmp) / "data"
        ds = generate(SyntheticConfig(users=1000, items=1000, events=args.backlog, seed=5))
        write_jsonl(ds, data)
        publish_dataset(open_dataset(data), settings)
        env = {
            **os.environ,
            "COLDSTREAM_BROKER": broker.bootstrap,
            "COLDSTREAM_TOPIC_PREFIX": "fresh",
            "COLDSTREAM_SNAPSHOT_DIR": str(Path(tmp) / "snapshots"),
            "COLDSTREAM_CHECKPOINT_DIR": str(Path(tmp) / "checkpoints"),
            "COLDSTREAM_SNAPSHOT_INTERVAL_S": "1",
        }
        worker = Child(
            "worker",
            ["worker", "--role", "student", "--metrics-port", "0"],
            env,
            Path(tmp) / "worker.log",
        )
        serve = Child(
            "serve",
            ["serve", "--host", "127.0.0.1", "--port", "0", "--threads", "1"],
            env,
            Path(tmp) / "serve.log",
        )
        try:
            metrics_port, port = worker.port(), serve.port()
            client = Http(port)
            deadline = time.monotonic() + 300
            while True:  # the backlog learned and served
                status, body = client.call("GET", "/readyz")
                if status == 200 and (body["newest_event_ts"] or 0) >= max(
                    r.ts for r in ds.interactions
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the backlog was not served within 300 s")
                time.sleep(0.2)
            print("backlog served; live phase", file=sys.stderr)
            names = ("coldstream_event_to_model_seconds", "coldstream_item_to_rankable_seconds")
            worker_client = Http(metrics_port)
            before = {n: _histogram(worker_client, n) for n in names}
            results = live(settings, client, ds, args)
            after = {n: _histogram(worker_client, n) for n in names}
            for n, label in zip(names, ("event_to_model", "worker_item_to_rankable"), strict=True):
                for q in (0.5, 0.99):
                    results[f"{label}_p{round(q * 100)}_s"] = _quantile(before[n], after[n], q)
        finally:
            for child in (worker, serve):
                child.stop()
    show(results, args.json)


def _histogram(client: Http, name: str) -> dict[str, float]:
    """A histogram of a /metrics page: ``{"sum", "count", le: cumulative count}``."""
    out: dict[str, float] = {"sum": 0.0, "count": 0.0}
    for (sample, labels), value in client.metrics().items():
        if sample == f"{name}_bucket":
            out[dict(labels)["le"]] = value
        elif sample in (f"{name}_sum", f"{name}_count"):
            out[sample.rsplit("_", 1)[1]] = value
    return out


def _quantile(before: dict[str, float], after: dict[str, float], q: float) -> float:
    """The q-quantile of what a histogram gained between two scrapes, interpolated linearly
    inside a bucket as Prometheus's ``histogram_quantile`` does."""
    bounds = sorted(
        (float(le), after[le] - before.get(le, 0.0)) for le in after if le[0] in "0123456789+"
    )
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return float("nan")
    rank, lo, below = q * total, 0.0, 0.0
    for le, cum in bounds:
        if cum >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(cum - below, 1e-12)
        lo, below = le, cum
    return lo


def live(settings: Settings, client: Http, ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    producer = KafkaProducer(**settings.kafka_python_config(), linger_ms=0)
    topics = settings.topics
    rng = np.random.default_rng(9)
    users = [u.user_id for u in ds.users]
    items = [i.item_id for i in ds.items]
    sent_items: dict[str, float] = {}
    stop = threading.Event()

    def produce() -> None:
        t0, n, next_item = time.monotonic(), 0, 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - t0 >= next_item:
                item_id = f"new-{len(sent_items)}"
                msg = {
                    "item_id": item_id,
                    "title": "a brand new thing",
                    "text": "fresh arrival about music and travel",
                    "ts": int(time.time() * 1000),
                }
                producer.send(topics.items, key=item_id.encode(), value=orjson.dumps(msg))
                producer.flush()
                sent_items[item_id] = time.monotonic()
                next_item += 2.0
            while n < (now - t0) * args.rate:
                u = users[int(rng.integers(len(users)))]
                msg = {
                    "user_id": u,
                    "item_id": items[int(rng.integers(len(items)))],
                    "ts": int(time.time() * 1000),
                }
                producer.send(topics.interactions, key=u.encode(), value=orjson.dumps(msg))
                n += 1
            time.sleep(0.005)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    to_servable: list[float] = []
    item_lag: dict[str, float] = {}
    version = client.call("GET", "/readyz")[1]["version"]
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        status, body = client.call("GET", "/readyz")
        if status == 200 and body["version"] != version:
            version = body["version"]
            to_servable.append(time.time() - body["newest_event_ts"] / 1000.0)
        waiting = [i for i in list(sent_items) if i not in item_lag]
        if waiting:
            _, scores = client.call("POST", "/score", {"user_id": "x", "item_ids": waiting})
            now = time.monotonic()
            for s in scores.get("scores", []):
                if s["score"] is not None:
                    item_lag[s["item_id"]] = now - sent_items[s["item_id"]]
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    producer.close()
    lags = list(item_lag.values())
    return {
        "snapshots_served": len(to_servable),
        "event_to_servable_p50_s": float(np.percentile(to_servable, 50)),
        "event_to_servable_p99_s": float(np.percentile(to_servable, 99)),
        "event_to_servable_max_s": float(np.max(to_servable)),
        "new_items": len(sent_items),
        "new_items_served": len(lags),
        "new_item_to_servable_p50_s": float(np.percentile(lags, 50)) if lags else float("nan"),
        "new_item_to_servable_p99_s": float(np.percentile(lags, 99)) if lags else float("nan"),
    }


if __name__ == "__main__":
    main()
